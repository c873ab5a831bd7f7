"""Parallel CPU kernels (Numba ``parallel=True`` with ``prange``)."""
from .. import config as _config

_config.apply_threading_layer()

from .dense import linear_backward_input, linear_backward_weight, linear_forward  # noqa: E402
from .elementwise import (  # noqa: E402
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
from .loss import softmax_cross_entropy  # noqa: E402
from .conv import (  # noqa: E402
    conv2d_backward_bias,
    conv2d_backward_input_phased,
    conv2d_backward_weight,
    conv2d_backward_weight_direct,
    conv2d_forward,
    conv2d_forward_direct,
    conv2d_forward_phased,
    conv2d_forward_unfolded,
    pad_phases,
)
from .pool import (  # noqa: E402
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

__all__ = [
    "adam_update",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "conv2d_backward_bias",
    "conv2d_backward_weight",
    "conv2d_backward_weight_direct",
    "conv2d_forward",
    "conv2d_forward_direct",
    "linear_backward_input",
    "linear_backward_weight",
    "linear_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "relu_backward",
    "relu_forward",
    "sgd_update",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_cross_entropy",
    "sum_rows",
    "tanh_backward",
    "tanh_forward",
]
