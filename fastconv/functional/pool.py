"""Pooling: max pooling (with the winners' indices for its backward) and average pooling.

Shapes use NCHW: x (N, C, H, W), y (N, C, P, Q) with ``P = (H + 2*pad_h - kh) // stride_h + 1`` (likewise Q).
"""
import numpy as np

from .._backend import backend_for
from .._checks import float_array, grad_shape, is_device_array, padding_sides, pair, shape4

__all__ = ["avg_pool2d", "avg_pool2d_backward", "max_pool2d", "max_pool2d_backward"]


def _pool_axis(size, k, stride, lo, hi, dil, ceil_mode):
    """Output length along one axis, PyTorch's rule: floor (or ceil) of (size + lo + hi - dil*(k-1) - 1) /
    stride, plus 1, where with ceil_mode a last window must start inside the input or its leading padding."""
    span = size + lo + hi - dil * (k - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + lo:
        out -= 1
    return out


class _Pooling:
    """Checked window, stride, padding (top, left for the kernels), dilation and output size of a pooling."""

    def __init__(self, x_shape, kernel_size, stride, padding, dilation=1, ceil_mode=False):
        self.k = pair("kernel_size", kernel_size, 1)
        self.stride = self.k if stride is None else pair("stride", stride, 1)
        self.dil = pair("dilation", dilation, 1)
        self.sides = padding_sides(padding)
        self.ceil_mode = bool(ceil_mode)
        H, W = x_shape[2], x_shape[3]
        t, b, left, r = self.sides
        for (lo, hi), k, d in (((t, b), self.k[0], self.dil[0]), ((left, r), self.k[1], self.dil[1])):
            if 2 * max(lo, hi) > d * (k - 1) + 1:
                raise ValueError(
                    f"padding {padding!r} must be at most half of kernel_size {self.k} (dilated by {self.dil}): a "
                    "window of padding alone has no input to pool")
        P = _pool_axis(H, self.k[0], self.stride[0], t, b, self.dil[0], self.ceil_mode)
        Q = _pool_axis(W, self.k[1], self.stride[1], left, r, self.dil[1], self.ceil_mode)
        if P < 1 or Q < 1:
            raise ValueError(f"kernel_size {self.k} with dilation {self.dil} does not fit the padded input "
                             f"{H + t + b}x{W + left + r} (shape {tuple(x_shape)}): output size would be {P}x{Q}, needs at least 1x1")
        self.out_hw = (P, Q)
        self.top_left = (t, left)

    def divisors(self, x_shape, count_include_pad):
        """The reciprocal row and column divisors (float64) of average pooling: a window counts its inputs,
        and with count_include_pad its padding up to the padded input's end (PyTorch's rule)."""
        out = []
        for size, k, s, (lo, hi), n in ((x_shape[2], self.k[0], self.stride[0], self.sides[:2], self.out_hw[0]),
                                        (x_shape[3], self.k[1], self.stride[1], self.sides[2:], self.out_hw[1])):
            start = np.arange(n) * s - lo
            end = np.minimum(start + k, size + hi)
            if count_include_pad:
                count = end - start
            else:
                count = np.minimum(end, size) - np.maximum(start, 0)
            out.append(1.0 / count.astype(np.float64))
        return out


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """2-D max pooling (padding counts as -inf); returns the maxima and the winners' indices.

    Parameters
    ----------
    x : array (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), default kernel_size
    padding : int, (ph, pw) or ((top, bottom), (left, right)), at most half of the dilated kernel
    dilation : int or (dh, dw), the spacing of a window's taps
    ceil_mode : round the output size up (a last, partial window must start inside the input or its
        leading padding), as PyTorch does

    Returns
    -------
    y : array (N, C, P, Q), ``P = (H + 2*ph - dh*(kh-1) - 1) // sh + 1`` (rounded up with ceil_mode) and
        likewise Q
    indices : int64 array (N, C, P, Q), the flat index ``h*W + w`` of each winner in its (n, c) plane.
        A NaN in a window wins it (as in PyTorch).
    """
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, np.int64)


def max_pool2d_own(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, indices=True):
    """:func:`max_pool2d` for a layer: with ``indices``, the winners' indices in the narrowest type that holds
    them on the target (int32 on the CPU for planes under 2**31 pixels: storing int64 indices took most of
    the pass), for :func:`max_pool2d_backward_own`; without, none are computed (inference) and None is
    returned for them."""
    y, idx = _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, "narrow" if indices else None)
    return y, (idx if indices else None)


def _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, index_dtype):
    """(y, idx) with indices of ``index_dtype``: np.int64, "narrow" (int32 where it holds every index and the
    target has such kernels: the CPU, planes under 2**31 pixels), or None (none computed; idx is then a
    1x1x1x1 stand-in the kernels do not touch)."""
    x = float_array("x", x, 4)
    if index_dtype == "narrow":
        index_dtype = np.int32 if not is_device_array(x) and x.shape[2] * x.shape[3] < 2**31 else np.int64
    pool = _Pooling(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    be = backend_for(x)
    N, C = x.shape[:2]
    y = be.empty((N, C, *pool.out_hw), x.dtype)
    keep = index_dtype is not None
    idx = be.empty((N, C, *pool.out_hw) if keep else (1, 1, 1, 1), index_dtype or np.int64)
    be.max_pool2d_forward(be.contiguous(x), y, idx, *pool.k, *pool.stride, *pool.top_left, *pool.dil, keep)
    return y, idx


def max_pool2d_backward(dy, indices, x_shape, kernel_size=None, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Gradient of max pooling: each ``dy`` entry goes to the input that won its window (overlapping windows
    accumulate).

    Parameters
    ----------
    dy : array (N, C, P, Q)
    indices : int64 array (N, C, P, Q) from :func:`max_pool2d`
    x_shape : (N, C, H, W) of the forward input
    kernel_size, stride, padding, dilation, ceil_mode : optional, the forward's pooling; when given, the GPU
        gives each input element its own thread (it gathers from the windows that hold it) instead of each
        (n, c) plane. The result is the same.

    Returns
    -------
    dx : array (N, C, H, W)
    """
    window = None if kernel_size is None else dict(kernel_size=kernel_size, stride=stride, padding=padding,
                                                   dilation=dilation, ceil_mode=ceil_mode)
    return _max_pool_backward(dy, indices, x_shape, check_range=True, window=window)


def max_pool2d_backward_own(dy, indices, x_shape, window=None):
    """:func:`max_pool2d_backward` for indices that came from this library's own :func:`max_pool2d` (a layer
    passing back its forward's winners): the pass that checks every index lies in its plane is skipped.
    ``window``, the forward's pooling keywords (kernel_size, stride, padding, dilation, ceil_mode), lets the
    GPU give each input element its own thread (it gathers from the windows that hold it)."""
    return _max_pool_backward(dy, indices, x_shape, check_range=False, window=window)


def _max_pool_backward(dy, indices, x_shape, check_range, window=None):
    dy = float_array("dy", dy, 4)
    x_shape = shape4("x_shape", x_shape)
    N, C, H, W = x_shape
    if not (isinstance(indices, np.ndarray) or is_device_array(indices)):
        raise TypeError(f"indices must be an int64 array from max_pool2d, got {type(indices).__name__}")
    if np.dtype(indices.dtype) != np.int64 and (check_range or np.dtype(indices.dtype) != np.int32):
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
    if window is not None:
        pool = _Pooling(x_shape, **dict(dict(stride=None, padding=0), **window))
        if tuple(dy.shape[2:]) != tuple(pool.out_hw):
            raise ValueError(f"dy must have the pooled size {tuple(pool.out_hw)} of x_shape {x_shape} with "
                             f"{window}, got shape {tuple(dy.shape)}")
        window = (H, W, *pool.k, *pool.stride, *pool.top_left, *pool.dil)
    dx = be.empty((N, C, H * W), dy.dtype)  # (each plane is zeroed by the kernel iteration that owns it)
    be.max_pool2d_backward(be.contiguous(dy), be.contiguous(indices), dx, window)
    return dx.reshape(x_shape)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """2-D average pooling.

    Parameters
    ----------
    x : array (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), default kernel_size
    padding : int, (ph, pw) or ((top, bottom), (left, right)), at most half of kernel_size
    ceil_mode : round the output size up, as in :func:`max_pool2d`
    count_include_pad : whether padded zeros count in a window's divisor (PyTorch's default, True; ONNX's
        AveragePool default is False). Either way a window never counts past the padded input's end.

    Returns
    -------
    y : array (N, C, P, Q), ``P = (H + 2*ph - kh) // sh + 1`` (rounded up with ceil_mode) and likewise Q
    """
    x = float_array("x", x, 4)
    pool = _Pooling(x.shape, kernel_size, stride, padding, 1, ceil_mode)
    be = backend_for(x)
    y = be.empty((x.shape[0], x.shape[1], *pool.out_hw), x.dtype)
    be.avg_pool2d_forward(be.contiguous(x), y, *pool.k, *pool.stride, *pool.top_left,
                          *pool.divisors(x.shape, bool(count_include_pad)))
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Gradient of average pooling: each ``dy`` entry is spread evenly over its window, divided by the
    window's divisor.

    Parameters
    ----------
    dy : array (N, C, P, Q)
    x_shape : (N, C, H, W) of the forward input
    kernel_size, stride, padding, ceil_mode, count_include_pad : as in :func:`avg_pool2d`

    Returns
    -------
    dx : array (N, C, H, W)
    """
    dy = float_array("dy", dy, 4)
    x_shape = shape4("x_shape", x_shape)
    pool = _Pooling(x_shape, kernel_size, stride, padding, 1, ceil_mode)
    grad_shape("dy", dy, (x_shape[0], x_shape[1], *pool.out_hw))
    be = backend_for(dy)
    dx = be.empty(x_shape, dy.dtype)  # (each plane is zeroed by the kernel iteration that owns it)
    be.avg_pool2d_backward(be.contiguous(dy), dx, *pool.k, *pool.stride, *pool.top_left,
                           *pool.divisors(x_shape, bool(count_include_pad)))
    return dx
