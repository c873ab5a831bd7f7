"""The functional API: validate, allocate, pick the target, call its entry point.

Shapes use NCHW: x (N, C, H, W), weight (K, C, R, S), y (N, K, P, Q). The output size of a convolution is
``P = (H + 2*pad_h - dil_h*(R-1) - 1) // stride_h + 1`` (likewise Q); pooling uses the same formula with
dilation 1 and the window (kh, kw) for (R, S). One module per op family: ``conv``, ``pool``, ``dense``
(dense, elementwise, loss and optimizer updates), ``norm`` (batch normalisation, global average pooling).
"""
from . import conv, dense, norm, pool
from .conv import conv2d, conv2d_backward_bias, conv2d_backward_input, conv2d_backward_weight
from .dense import (
    adam_update,
    add,
    add_into,
    linear,
    linear_backward_bias,
    linear_backward_input,
    linear_backward_weight,
    mul,
    relu,
    relu_backward,
    sgd_update,
    sigmoid,
    sigmoid_backward,
    softmax_cross_entropy,
    tanh,
    tanh_backward,
)
from .norm import (
    batch_norm2d,
    batch_norm2d_backward,
    batch_norm2d_inference,
    global_avg_pool2d,
    global_avg_pool2d_backward,
)
from .pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

__all__ = sorted([*conv.__all__, *pool.__all__, *dense.__all__, *norm.__all__])
