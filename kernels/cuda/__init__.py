"""CUDA kernels (numba.cuda), twins of ``kernels/cpu``: the same function names and arguments, taking and
returning device arrays. Importing this needs numba-cuda (``pip install "fastconv[cuda]"``)."""
from .conv import (
    conv2d_backward_bias,
    conv2d_backward_weight,
    conv2d_backward_weight_direct,
    conv2d_forward,
    conv2d_forward_direct,
    dilate_pad,  # (CUDA only, outside the twin set: the CPU input gradient needs no spread delta)
)
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
from .loss import softmax_cross_entropy
from .pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward

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
