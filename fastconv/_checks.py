"""Argument validation shared by the functional ops: every user mistake becomes a ValueError or TypeError
whose message names the argument, what it got and what it needs."""
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_device_array(a):
    """True for CUDA arrays: anything exposing ``__cuda_array_interface__``, and Numba's device arrays (also
    the simulator's, which lack the interface)."""
    if isinstance(a, np.ndarray):
        return False
    return hasattr(a, "__cuda_array_interface__") or (hasattr(a, "copy_to_host") and hasattr(a, "dtype"))


def device_view(a):
    """A device array of another library (CuPy, PyTorch) as a Numba device array viewing the same memory;
    Numba's own device arrays and numpy arrays as they are."""
    if isinstance(a, np.ndarray) or hasattr(a, "copy_to_host") or not hasattr(a, "__cuda_array_interface__"):
        return a
    try:
        from .kernels.cuda import memory
    except ImportError as e:
        raise RuntimeError(f"a CUDA array was given but numba-cuda cannot be imported ({e}): "
                           "pip install 'fastconv[cuda]'") from None
    return memory.as_device(a)


def float_array(name, a, ndim=None):
    """Check that ``a`` is a float32/float64 array (numpy or CUDA) of rank ``ndim``; return it, as a Numba
    device array if it came from another CUDA library (their dtypes are not numpy's)."""
    if not (isinstance(a, np.ndarray) or is_device_array(a)):
        raise TypeError(f"{name} must be a numpy or CUDA array of float32 or float64, got {type(a).__name__}")
    a = device_view(a)
    dtype = np.dtype(a.dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {dtype}")
    if ndim is not None and len(a.shape) != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D ({_rank_hint(ndim)}), got {len(a.shape)}-D array of shape {tuple(a.shape)}"
        )
    return a


def to_host(a, copy=False):
    """A numpy array with a's values: device arrays are copied to the host, host arrays kept (or copied)."""
    if is_device_array(a):
        return device_view(a).copy_to_host()  # (CuPy arrays, PyTorch CUDA tensors: through a Numba view)
    return np.array(a, copy=True) if copy else np.asarray(a)


def _rank_hint(ndim):
    return {4: "N, C, H, W", 2: "N, features", 1: "length"}.get(ndim, f"{ndim} axes")


def same_dtype(names, arrays):
    """All arrays share one dtype, else TypeError naming them."""
    dtypes = [np.dtype(a.dtype) for a in arrays]
    if len(set(dtypes)) > 1:
        got = ", ".join(f"{n} {d}" for n, d in zip(names, dtypes))
        raise TypeError(f"arrays must share one dtype, got {got}")
    return dtypes[0]


def _int(name, v):
    if type(v) is int:  # the common case, without the slow ABC check below
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    return int(v)


def pair(name, v, minimum):
    """An int or an (h, w) pair of ints, each >= minimum, as a tuple of two ints."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got a sequence of length {len(v)}: {v!r}")
        out = (_int(name, v[0]), _int(name, v[1]))
    else:
        out = (_int(name, v),) * 2
    if min(out) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return out


def shape4(name, shape):
    """A 4-tuple of positive ints (an array shape given by the caller)."""
    try:
        t = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a shape (N, C, H, W), got {shape!r}") from None
    if len(t) != 4:
        raise ValueError(f"{name} must have 4 entries (N, C, H, W), got {len(t)}: {t!r}")
    t = tuple(_int(name, d) for d in t)
    if min(t) < 1:
        raise ValueError(f"{name} entries must be >= 1, got {t!r}")
    return t


def out_size(size, pad, dil, k, stride):
    """P = (H + 2*pad - dil*(k-1) - 1) // stride + 1."""
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def conv_out_hw(x_shape, w_shape, stride, padding, dilation, what="input"):
    """Output (P, Q) of a convolution; ValueError if the (dilated) kernel does not fit the padded input."""
    H, W = x_shape[2], x_shape[3]
    R, S = w_shape[2], w_shape[3]
    P = out_size(H, padding[0], dilation[0], R, stride[0])
    Q = out_size(W, padding[1], dilation[1], S, stride[1])
    if P < 1 or Q < 1:
        raise ValueError(
            f"kernel {R}x{S} with dilation {dilation} does not fit the padded {what} "
            f"{H + 2 * padding[0]}x{W + 2 * padding[1]} (shape {tuple(x_shape)}, padding {padding}): "
            f"output size would be {P}x{Q}, needs at least 1x1"
        )
    return P, Q


def grad_shape(name, dy, expected):
    """The delta must have the forward output's shape."""
    if tuple(dy.shape) != tuple(expected):
        raise ValueError(f"{name} must have the forward output's shape {tuple(expected)}, got {tuple(dy.shape)}")


def is_per_side(padding):
    """Whether ``padding`` has the per-side form ((top, bottom), (left, right))."""
    return isinstance(padding, (tuple, list)) and len(padding) == 2 and all(isinstance(p, (tuple, list)) for p in padding)


def padding_sides(padding):
    """(top, bottom, left, right) of an int, an (h, w) pair or ((top, bottom), (left, right)), each >= 0."""
    if is_per_side(padding):
        (t, b), (left, r) = pair("padding", padding[0], 0), pair("padding", padding[1], 0)
        return (t, b, left, r)
    ph, pw = pair("padding", padding, 0)
    return (ph, ph, pw, pw)


def conv_padding(padding, kernel_hw, dilation, stride):
    """Convolution padding as (top, bottom, left, right): an int, an (h, w) pair, a per-side pair of pairs
    ((top, bottom), (left, right)), "valid" (none) or "same" (stride 1 only; output size = input size, the
    odd pixel of an even kernel's padding at the end, as PyTorch does)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if tuple(stride) != (1, 1):
                raise ValueError(f"padding='same' needs stride 1 (as in PyTorch), got stride {tuple(stride)}")
            th, tw = dilation[0] * (kernel_hw[0] - 1), dilation[1] * (kernel_hw[1] - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise ValueError(f"padding must be an int, a pair, ((top, bottom), (left, right)), 'same' or 'valid', got {padding!r}")
    return padding_sides(padding)


def conv_out_sides(x_shape, w_shape, stride, sides, dilation, what="input"):
    """Output (P, Q) of a convolution padded by sides = (top, bottom, left, right); ValueError if the
    (dilated) kernel does not fit the padded input."""
    H, W = x_shape[2], x_shape[3]
    R, S = w_shape[2], w_shape[3]
    top, bottom, left, right = sides
    P = (H + top + bottom - dilation[0] * (R - 1) - 1) // stride[0] + 1
    Q = (W + left + right - dilation[1] * (S - 1) - 1) // stride[1] + 1
    if P < 1 or Q < 1:
        raise ValueError(
            f"kernel {R}x{S} with dilation {dilation} does not fit the padded {what} "
            f"{H + top + bottom}x{W + left + right} (shape {tuple(x_shape)}, padding {sides} as (top, bottom, "
            f"left, right)): output size would be {P}x{Q}, needs at least 1x1"
        )
    return P, Q


def groups_of(groups, C, K, weight_shape, x_name="x"):
    """Check ``groups`` against C input and K output channels and the weight's second axis (C / groups)."""
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, numbers.Integral):
        raise TypeError(f"groups must be an int, got {groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    if C % groups or K % groups:
        raise ValueError(f"groups={groups} must divide both the input channels ({C}, {x_name}) and the output "
                         f"channels ({K}, weight.shape[0])")
    if weight_shape[1] != C // groups:
        raise ValueError(f"weight must have C / groups = {C // groups} input channels per group on its second axis "
                         f"(weight (K, C/groups, R, S) with {x_name} of {C} channels, groups={groups}), got shape "
                         f"{tuple(weight_shape)}")
    return groups
