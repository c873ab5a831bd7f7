"""The CUDA target's op-level entry points, twins of ``kernels/cpu/plan.py``: the same names and arguments,
taking and returning device arrays. Importing this needs numba-cuda (``pip install "fastconv[cuda]"``)."""
import numpy as np

from .. import ENTRY_POINTS
from . import memory
from .dense import linear_backward_input, linear_backward_weight, linear_forward
from .elementwise import (
    adam_update,
    relu_backward,
    relu_forward,
    sgd_update,
    sigmoid_backward,
    sigmoid_forward,
    sum_rows,
    tanh_backward,
    tanh_forward,
)
from .forward import conv2d_forward as _forward
from .input_grad import conv2d_backward_input as _input_grad
from .layout import pad_sides as _pad_sides
from .loss import softmax_cross_entropy
from .memory import add as _add
from .memory import add_into as _add_into
from .memory import contiguous, zeros
from .memory import mul as _mul
from .norm import (
    batch_norm_apply,
    batch_norm_backward,
    batch_norm_backward_dx,
    batch_norm_backward_sums,
    batch_norm_stats,
    global_avg_pool_backward,
    global_avg_pool_forward,
)
from .pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from .weight_grad import conv2d_backward_bias
from .weight_grad import conv2d_backward_weight as _weight_grad


name = "cuda"

__all__ = list(ENTRY_POINTS)


# --- arrays --------------------------------------------------------------------------------------------------

def empty(shape, dtype):
    return memory.device_array(shape, dtype)


def asarray(a):
    """A host array (or a device array, returned as it is) as a contiguous device array."""
    if isinstance(a, np.ndarray) or np.isscalar(a):
        return memory.to_device(np.asarray(a))
    return contiguous(a)


def flat(a):
    return a.reshape(a.size)


def mean(a):
    return float(np.mean(contiguous(a).copy_to_host()))


def minmax(a):
    h = contiguous(a).copy_to_host()
    return int(h.min()), int(h.max())


def mul(a, b):
    return _mul(contiguous(a), contiguous(b))


def add_into(dst, src):
    return _add_into(dst, contiguous(src))


def add(a, b, relu=False):
    return _add(contiguous(a), contiguous(b), relu)


def pad_sides(x, top, bottom, left, right):
    return _pad_sides(contiguous(x), top, bottom, left, right)


# --- entry points --------------------------------------------------------------------------------------------

def conv2d_forward(x, w, b, y, stride, padding, dilation, relu, groups):
    """y = conv2d(x, w, b) with ``groups``, read from x and w in place (padding and taps resolved by index)."""
    return _forward(contiguous(x), contiguous(w), b, y, stride, padding, dilation, relu, groups)


def conv2d_backward_input(dy, w, dx, stride, padding, dilation, groups):
    return _input_grad(contiguous(dy), contiguous(w), dx, stride, padding, dilation, groups)


def conv2d_backward_weight(dy, x, dw, db, stride, padding, dilation, groups):
    """dw (K, C/groups, R, S), zeroed, += the weight gradient; db += the bias gradient when it has K
    entries."""
    return _weight_grad(contiguous(x), contiguous(dy), dw, db, stride, padding, dilation, groups)
