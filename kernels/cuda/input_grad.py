"""conv2d input gradient on the GPU: the delta spread apart by the stride into a zero buffer bordered by
``dil*(k-1) - pad`` on each side, correlated with the 180-degree flipped, channel-transposed kernel by the
forward kernels."""
from .forward import conv2d_forward_broadcast, conv2d_forward_direct
from .layout import dilate_pad, flipped, pad, weight_matrix
from .memory import zeros

DIRECT_MAX_CHANNELS = 8  # below this many output channels the forward reads (K, C, R, S) weights directly


def conv2d_backward_input_spread(dy, w, dx, sh, sw, dil_h, dil_w, ph, pw, groups):
    """dx (N, C, H, W) = the full correlation of the spread, bordered delta with the flipped kernel."""
    N, K = dy.shape[0], dy.shape[1]
    C, R, S = dx.shape[1], w.shape[2], w.shape[3]
    H, W = dx.shape[2], dx.shape[3]
    eh, ew = dil_h * (R - 1), dil_w * (S - 1)  # extent of the dilated kernel, less one
    if (sh, sw) == (1, 1) and eh >= ph and ew >= pw:  # nothing to spread or crop: a plain zero border
        z = pad(dy, eh - ph, ew - pw)
    else:
        z = zeros((N, K, H + eh, W + ew), dy.dtype)
        dilate_pad(dy, z, sh, sw, eh - ph, ew - pw)
    bias = zeros((C,), dx.dtype)
    if C < DIRECT_MAX_CHANNELS:
        return conv2d_forward_direct(z, flipped(w, groups), bias, dx, dil_h, dil_w, False, groups)
    return conv2d_forward_broadcast(z, weight_matrix(w, True, groups), bias, dx, R, S, 1, 1, dil_h, dil_w, False, groups)
