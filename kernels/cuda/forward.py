"""conv2d forward on the GPU: the implicit-GEMM product of ``implicit_gemm.py`` read straight from x and the
(K, C/groups, R, S) weights, any stride, padding and dilation, bias and a fused ReLU in its epilogue."""
from .implicit_gemm import conv_product


def conv2d_forward(x, w, bias, y, stride, padding, dilation, relu, groups):
    """y (N, K, P, Q) = conv2d(x, w) + bias, clamped at zero with ``relu``."""
    return conv_product(x, w, bias, y, stride, padding, dilation, groups, False, relu)
