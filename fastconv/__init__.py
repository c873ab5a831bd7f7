"""fastconv: a small CNN engine whose kernels are hand-written Numba loops, for parallel CPUs and NVIDIA GPUs.

The functional ops (``conv2d``, ``max_pool2d``, ...) take NCHW numpy arrays (or CUDA arrays) of float32 or
float64; layers live in :mod:`fastconv.nn`, optimizers in :mod:`fastconv.optim`, models in
:mod:`fastconv.models`.
"""
__version__ = "0.1.0"

from .functional import (  # noqa: E402
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward_bias,
    conv2d_backward_input,
    conv2d_backward_weight,
    max_pool2d,
    max_pool2d_backward,
    relu,
    relu_backward,
)
from .threads import get_num_threads, set_num_threads  # noqa: E402

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward_bias",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "get_num_threads",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
    "set_num_threads",
]
