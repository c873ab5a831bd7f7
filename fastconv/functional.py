"""The functional API: validate, allocate, pick the target, call the kernel.

Shapes use NCHW: x (N, C, H, W), weight (K, C, R, S), y (N, K, P, Q). The output size of a convolution is
``P = (H + 2*pad_h - dil_h*(R-1) - 1) // stride_h + 1`` (likewise Q); pooling uses the same formula with
dilation 1 and the window (kh, kw) for (R, S).
"""
import numpy as np

from ._backend import backend_for
from ._checks import conv_out_hw, float_array, grad_shape, pair, same_dtype, shape4

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward_bias",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
]


def _conv_args(stride, padding, dilation):
    return pair("stride", stride, 1), pair("padding", padding, 0), pair("dilation", dilation, 1)


def _check_channels(x_name, x_shape, weight_shape, w_name="weight"):
    if x_shape[1] != weight_shape[1]:
        raise ValueError(
            f"{x_name} has {x_shape[1]} channels (shape {tuple(x_shape)}) but {w_name} expects {weight_shape[1]} "
            f"(shape {tuple(weight_shape)}, which needs (K, C, R, S) with C = {x_name}.shape[1])"
        )


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, *, _relu=False):
    """2-D cross-correlation, as in every deep-learning library.

    ``y[n,k,p,q] = bias[k] + sum_{c,r,s} weight[k,c,r,s] * x[n, c, p*sh + r*dh - ph, q*sw + s*dw - pw]``
    with zeros outside the input.

    Parameters
    ----------
    x : array (N, C, H, W), float32 or float64
    weight : array (K, C, R, S), same dtype
    bias : array (K,) or None
    stride, padding, dilation : int or (h, w) pair
        stride >= 1, padding >= 0 (zeros), dilation >= 1.

    Returns
    -------
    y : array (N, K, P, Q) with ``P = (H + 2*ph - dh*(R-1) - 1) // sh + 1`` and likewise Q.
    """
    x = float_array("x", x, 4)
    weight = float_array("weight", weight, 4)
    _check_channels("x", x.shape, weight.shape)
    K = weight.shape[0]
    if bias is not None:
        bias = float_array("bias", bias)
        if tuple(bias.shape) != (K,):
            raise ValueError(f"bias must have shape ({K},) (one per output channel), got {tuple(bias.shape)}")
    dtype = same_dtype(("x", "weight", "bias"), [a for a in (x, weight, bias) if a is not None])
    (sh, sw), (ph, pw), (dh, dw) = _conv_args(stride, padding, dilation)
    P, Q = conv_out_hw(x.shape, weight.shape, (sh, sw), (ph, pw), (dh, dw))
    be = backend_for(x, weight, bias)
    xp = be.pad(be.contiguous(x), ph, pw)
    b = be.zeros((K,), dtype) if bias is None else be.contiguous(bias)
    y = be.empty((x.shape[0], K, P, Q), dtype)
    be.k.conv2d_forward(xp, be.contiguous(weight), b, y, sh, sw, dh, dw, bool(_relu))
    return y


def conv2d_backward_input(dy, weight, x_shape, stride=1, padding=0, dilation=1):
    """Gradient of conv2d with respect to its input: the full convolution of the delta with the kernel
    flipped 180 degrees, ``dx[n,c,i,j] = sum_{k,r,s} dy[n,k,(i+ph-r*dh)/sh,(j+pw-s*dw)/sw] * weight[k,c,r,s]``
    (terms with a non-integer or out-of-range index are zero).

    Parameters
    ----------
    dy : array (N, K, P, Q), the delta of the forward output
    weight : array (K, C, R, S)
    x_shape : (N, C, H, W) of the forward input
    stride, padding, dilation : as in :func:`conv2d`

    Returns
    -------
    dx : array (N, C, H, W)

    Notes
    -----
    The delta is spread apart by the stride into a zero buffer padded by ``dil*(k-1) - pad`` on each side,
    and correlated with the flipped, channel-transposed kernel by the forward kernel.
    """
    dy = float_array("dy", dy, 4)
    weight = float_array("weight", weight, 4)
    x_shape = shape4("x_shape", x_shape)
    dtype = same_dtype(("dy", "weight"), (dy, weight))
    _check_channels("x_shape", x_shape, weight.shape)
    (sh, sw), (ph, pw), (dh, dw) = _conv_args(stride, padding, dilation)
    P, Q = conv_out_hw(x_shape, weight.shape, (sh, sw), (ph, pw), (dh, dw), what="input (x_shape)")
    N, C, H, W = x_shape
    K, _, R, S = weight.shape
    grad_shape("dy", dy, (N, K, P, Q))
    be = backend_for(dy, weight)
    eh, ew = dh * (R - 1), dw * (S - 1)  # extent of the dilated kernel, less one
    z = be.zeros((N, K, H + eh, W + ew), dtype)
    be.k.dilate_pad(be.contiguous(dy), z, sh, sw, eh - ph, ew - pw)
    dx = be.empty((N, C, H, W), dtype)
    be.k.conv2d_forward(z, be.flip_transpose(be.contiguous(weight)), be.zeros((C,), dtype), dx, 1, 1, dh, dw, False)
    return dx


def conv2d_backward_weight(dy, x, weight_shape, stride=1, padding=0, dilation=1):
    """Gradient of conv2d with respect to its weight: the input cross-correlated with the delta,
    ``dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n, c, p*sh + r*dh - ph, q*sw + s*dw - pw]``.

    Parameters
    ----------
    dy : array (N, K, P, Q)
    x : array (N, C, H, W), the forward input
    weight_shape : (K, C, R, S)
    stride, padding, dilation : as in :func:`conv2d`

    Returns
    -------
    dw : array (K, C, R, S), summed over the batch
    """
    dy = float_array("dy", dy, 4)
    x = float_array("x", x, 4)
    weight_shape = shape4("weight_shape", weight_shape)
    dtype = same_dtype(("dy", "x"), (dy, x))
    _check_channels("x", x.shape, weight_shape, "weight_shape")
    (sh, sw), (ph, pw), (dh, dw) = _conv_args(stride, padding, dilation)
    P, Q = conv_out_hw(x.shape, weight_shape, (sh, sw), (ph, pw), (dh, dw))
    grad_shape("dy", dy, (x.shape[0], weight_shape[0], P, Q))
    be = backend_for(dy, x)
    xp = be.pad(be.contiguous(x), ph, pw)
    dwt = be.zeros(weight_shape, dtype)
    be.k.conv2d_backward_weight(xp, be.contiguous(dy), dwt, sh, sw, dh, dw)
    return dwt


def conv2d_backward_bias(dy):
    """Gradient of conv2d with respect to its bias, ``db[k] = sum_{n,p,q} dy[n,k,p,q]``.

    Parameters
    ----------
    dy : array (N, K, P, Q)

    Returns
    -------
    db : array (K,)
    """
    dy = float_array("dy", dy, 4)
    be = backend_for(dy)
    db = be.zeros((dy.shape[1],), dy.dtype)
    be.k.conv2d_backward_bias(be.contiguous(dy), db)
    return db


def _pool_args(x_shape, kernel_size, stride, padding):
    kh, kw = pair("kernel_size", kernel_size, 1)
    sh, sw = (kh, kw) if stride is None else pair("stride", stride, 1)
    ph, pw = pair("padding", padding, 0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(
            f"padding {(ph, pw)} must be at most half of kernel_size {(kh, kw)}: "
            "a window of padding alone has no input to pool"
        )
    P, Q = conv_out_hw(x_shape, (0, 0, kh, kw), (sh, sw), (ph, pw), (1, 1))
    return (kh, kw), (sh, sw), (ph, pw), (P, Q)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """2-D max pooling (padding counts as -inf); returns the maxima and the winners' indices.

    Parameters
    ----------
    x : array (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), default kernel_size
    padding : int or (ph, pw), at most half of kernel_size

    Returns
    -------
    y : array (N, C, P, Q), ``P = (H + 2*ph - kh) // sh + 1`` and likewise Q
    indices : int64 array (N, C, P, Q), the flat index ``h*W + w`` of each winner in its (n, c) plane.
        A NaN in a window wins it (as in PyTorch).
    """
    x = float_array("x", x, 4)
    (kh, kw), (sh, sw), (ph, pw), (P, Q) = _pool_args(x.shape, kernel_size, stride, padding)
    be = backend_for(x)
    N, C = x.shape[:2]
    y = be.empty((N, C, P, Q), x.dtype)
    idx = be.empty((N, C, P, Q), np.int64)
    be.k.max_pool2d_forward(be.contiguous(x), y, idx, kh, kw, sh, sw, ph, pw)
    return y, idx


def max_pool2d_backward(dy, indices, x_shape):
    """Gradient of max pooling: each ``dy`` entry goes to the input that won its window (overlapping windows
    accumulate).

    Parameters
    ----------
    dy : array (N, C, P, Q)
    indices : int64 array (N, C, P, Q) from :func:`max_pool2d`
    x_shape : (N, C, H, W) of the forward input

    Returns
    -------
    dx : array (N, C, H, W)
    """
    dy = float_array("dy", dy, 4)
    x_shape = shape4("x_shape", x_shape)
    N, C, H, W = x_shape
    if not (isinstance(indices, np.ndarray) or hasattr(indices, "__cuda_array_interface__")):
        raise TypeError(f"indices must be an int64 array from max_pool2d, got {type(indices).__name__}")
    if np.dtype(indices.dtype) != np.int64:
        raise TypeError(f"indices must have dtype int64, got {indices.dtype}")
    if tuple(indices.shape) != tuple(dy.shape):
        raise ValueError(f"indices must have dy's shape {tuple(dy.shape)}, got {tuple(indices.shape)}")
    if tuple(dy.shape[:2]) != (N, C):
        raise ValueError(f"dy must have (N, C) = {(N, C)} from x_shape {x_shape}, got shape {tuple(dy.shape)}")
    be = backend_for(dy, indices)
    if indices.size:
        lo, hi = be.minmax(indices)
        if lo < 0 or hi >= H * W:
            raise ValueError(
                f"indices must lie in [0, {H * W}) (flat positions in an {H}x{W} plane), got values in [{lo}, {hi}]"
            )
    dx = be.zeros((N, C, H * W), dy.dtype)
    be.k.max_pool2d_backward(be.contiguous(dy), be.contiguous(indices), dx)
    return dx.reshape(x_shape)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """2-D average pooling; padded zeros count in the divisor (``count_include_pad=True``).

    Parameters
    ----------
    x : array (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), default kernel_size
    padding : int or (ph, pw), at most half of kernel_size

    Returns
    -------
    y : array (N, C, P, Q), ``P = (H + 2*ph - kh) // sh + 1`` and likewise Q
    """
    x = float_array("x", x, 4)
    (kh, kw), (sh, sw), (ph, pw), (P, Q) = _pool_args(x.shape, kernel_size, stride, padding)
    be = backend_for(x)
    y = be.empty((x.shape[0], x.shape[1], P, Q), x.dtype)
    be.k.avg_pool2d_forward(be.contiguous(x), y, kh, kw, sh, sw, ph, pw)
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0):
    """Gradient of average pooling: each ``dy`` entry is spread evenly, ``/ (kh*kw)``, over its window.

    Parameters
    ----------
    dy : array (N, C, P, Q)
    x_shape : (N, C, H, W) of the forward input
    kernel_size, stride, padding : as in :func:`avg_pool2d`

    Returns
    -------
    dx : array (N, C, H, W)
    """
    dy = float_array("dy", dy, 4)
    x_shape = shape4("x_shape", x_shape)
    (kh, kw), (sh, sw), (ph, pw), (P, Q) = _pool_args(x_shape, kernel_size, stride, padding)
    grad_shape("dy", dy, (x_shape[0], x_shape[1], P, Q))
    be = backend_for(dy)
    dx = be.zeros(x_shape, dy.dtype)
    be.k.avg_pool2d_backward(be.contiguous(dy), dx, kh, kw, sh, sw, ph, pw)
    return dx


def relu(x):
    """``y = max(x, 0)`` elementwise, any shape (NaN stays NaN)."""
    x = float_array("x", x)
    be = backend_for(x)
    x = be.contiguous(x)
    y = be.empty(x.shape, x.dtype)
    be.k.relu_forward(be.flat(x), be.flat(y))
    return y


def relu_backward(dy, x):
    """Gradient of ReLU: ``dx = dy`` where ``x > 0``, else 0. ``dy`` and ``x`` share one shape."""
    dy = float_array("dy", dy)
    x = float_array("x", x)
    if tuple(dy.shape) != tuple(x.shape):
        raise ValueError(f"dy must have x's shape {tuple(x.shape)}, got {tuple(dy.shape)}")
    same_dtype(("dy", "x"), (dy, x))
    be = backend_for(dy, x)
    dy, x = be.contiguous(dy), be.contiguous(x)
    dx = be.empty(x.shape, x.dtype)
    be.k.relu_backward(be.flat(dy), be.flat(x), be.flat(dx))
    return dx
