"""The classic im2col + BLAS convolution in numpy: the peer every kernel is measured against.

Forward lowers the padded input into columns with ``as_strided`` (no copy until the reshape) and multiplies by
the weight matrix; dW multiplies the delta by the same columns; dX multiplies the weight by the delta and
scatters the columns back (col2im).
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided


def _cols(xp, R, S, P, Q, sh, sw, dh, dw):
    """(N, C, R, S, P, Q) strided view of the padded input."""
    N, C, _, _ = xp.shape
    n, c, h, w = xp.strides
    return as_strided(xp, (N, C, R, S, P, Q), (n, c, h * dh, w * dw, h * sh, w * sw), writeable=False)


def _pad(x, ph, pw):
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x


def _out(H, W, R, S, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    return (H + 2 * ph - dh * (R - 1) - 1) // sh + 1, (W + 2 * pw - dw * (S - 1) - 1) // sw + 1


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    P, Q = _out(H, W, R, S, stride, padding, dilation)
    cols = _cols(_pad(x, *padding), R, S, P, Q, *stride, *dilation)
    cols = cols.transpose(1, 2, 3, 0, 4, 5).reshape(C * R * S, N * P * Q)  # the copy: (CRS, NPQ)
    y = (w.reshape(K, -1) @ cols).reshape(K, N, P, Q).transpose(1, 0, 2, 3)
    if b is not None:
        y = y + b[None, :, None, None]
    return np.ascontiguousarray(y)


def conv2d_backward_weight(dy, x, w_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    K, C, R, S = w_shape
    N, _, P, Q = dy.shape
    cols = _cols(_pad(x, *padding), R, S, P, Q, *stride, *dilation)
    cols = cols.transpose(0, 4, 5, 1, 2, 3).reshape(N * P * Q, C * R * S)
    return (dy.transpose(1, 0, 2, 3).reshape(K, -1) @ cols).reshape(w_shape)


def conv2d_backward_input(dy, w, x_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    N, C, H, W = x_shape
    K, _, R, S = w.shape
    _, _, P, Q = dy.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    cols = (w.reshape(K, -1).T @ dy.transpose(1, 0, 2, 3).reshape(K, -1)).reshape(C, R, S, N, P, Q)
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dy.dtype)
    for r in range(R):  # col2im: add each kernel offset's slab back at its place
        for s in range(S):
            h0, w0 = r * dh, s * dw
            dxp[:, :, h0 : h0 + sh * (P - 1) + 1 : sh, w0 : w0 + sw * (Q - 1) + 1 : sw] += cols[:, r, s].transpose(1, 0, 2, 3)
    return dxp[:, :, ph : ph + H, pw : pw + W]


def _windows(x, k, s, fill):
    N, C, H, W = x.shape
    P, Q = (H - k) // s + 1, (W - k) // s + 1
    n, c, h, w = x.strides
    return as_strided(x, (N, C, P, Q, k, k), (n, c, h * s, w * s, h, w), writeable=False), P, Q


def max_pool2d(x, k, s):
    """(y, flat indices h*W + w) for a k x k window, stride s, no padding."""
    N, C, H, W = x.shape
    win, P, Q = _windows(x, k, s, -np.inf)
    flat = win.reshape(N, C, P, Q, k * k)
    arg = flat.argmax(axis=-1)
    y = np.take_along_axis(flat, arg[..., None], -1)[..., 0]
    i, j = np.divmod(arg, k)
    idx = (np.arange(P)[:, None] * s + i) * W + (np.arange(Q)[None, :] * s + j)
    return y, idx


def max_pool2d_backward(dy, idx, x_shape):
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W), dy.dtype)
    rows = np.repeat(np.arange(N * C), dy.shape[2] * dy.shape[3])
    np.add.at(dx, (rows, idx.reshape(-1)), dy.reshape(-1))
    return dx.reshape(x_shape)


def avg_pool2d(x, k, s):
    win, _, _ = _windows(x, k, s, 0)
    return win.mean(axis=(-2, -1), dtype=x.dtype)


def avg_pool2d_backward(dy, x_shape, k, s):
    dx = np.zeros(x_shape, dy.dtype)
    P, Q = dy.shape[2:]
    g = dy / (k * k)
    for i in range(k):
        for j in range(k):
            dx[:, :, i : i + s * (P - 1) + 1 : s, j : j + s * (Q - 1) + 1 : s] += g
    return dx
