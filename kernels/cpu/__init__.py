"""Parallel CPU kernels (Numba ``parallel=True`` with ``prange``)."""
from .. import config as _config

_config.apply_threading_layer()

from .activation import relu_backward, relu_forward  # noqa: E402
from .conv import (  # noqa: E402
    conv2d_backward_bias,
    conv2d_backward_weight,
    conv2d_forward,
    dilate_pad,
)
from .pool import (  # noqa: E402
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "conv2d_backward_bias",
    "conv2d_backward_weight",
    "conv2d_forward",
    "dilate_pad",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "relu_backward",
    "relu_forward",
]
