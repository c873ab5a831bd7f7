"""Pooling: max pooling (with the winners' indices for its backward) and average pooling.

Shapes use NCHW: x (N, C, H, W), y (N, C, P, Q) with ``P = (H + 2*pad_h - kh) // stride_h + 1`` (likewise Q).
"""
import numpy as np

from .._backend import backend_for
from .._checks import conv_out_hw, float_array, grad_shape, is_device_array, pair, shape4

__all__ = ["avg_pool2d", "avg_pool2d_backward", "max_pool2d", "max_pool2d_backward"]


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
    be.max_pool2d_forward(be.contiguous(x), y, idx, kh, kw, sh, sw, ph, pw)
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
    return _max_pool_backward(dy, indices, x_shape, check_range=True)


def max_pool2d_backward_own(dy, indices, x_shape):
    """:func:`max_pool2d_backward` for indices that came from this library's own :func:`max_pool2d` (a layer
    passing back its forward's winners): the pass that checks every index lies in its plane is skipped."""
    return _max_pool_backward(dy, indices, x_shape, check_range=False)


def _max_pool_backward(dy, indices, x_shape, check_range):
    dy = float_array("dy", dy, 4)
    x_shape = shape4("x_shape", x_shape)
    N, C, H, W = x_shape
    if not (isinstance(indices, np.ndarray) or is_device_array(indices)):
        raise TypeError(f"indices must be an int64 array from max_pool2d, got {type(indices).__name__}")
    if np.dtype(indices.dtype) != np.int64:
        raise TypeError(f"indices must have dtype int64, got {indices.dtype}")
    if tuple(indices.shape) != tuple(dy.shape):
        raise ValueError(f"indices must have dy's shape {tuple(dy.shape)}, got {tuple(indices.shape)}")
    if tuple(dy.shape[:2]) != (N, C):
        raise ValueError(f"dy must have (N, C) = {(N, C)} from x_shape {x_shape}, got shape {tuple(dy.shape)}")
    be = backend_for(dy, indices)
    if indices.size and check_range:
        lo, hi = be.minmax(indices)
        if lo < 0 or hi >= H * W:
            raise ValueError(
                f"indices must lie in [0, {H * W}) (flat positions in an {H}x{W} plane), got values in [{lo}, {hi}]"
            )
    dx = be.empty((N, C, H * W), dy.dtype)  # (each plane is zeroed by the kernel iteration that owns it)
    be.max_pool2d_backward(be.contiguous(dy), be.contiguous(indices), dx)
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
    be.avg_pool2d_forward(be.contiguous(x), y, kh, kw, sh, sw, ph, pw)
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
    dx = be.empty(x_shape, dy.dtype)  # (each plane is zeroed by the kernel iteration that owns it)
    be.avg_pool2d_backward(be.contiguous(dy), dx, kh, kw, sh, sw, ph, pw)
    return dx
