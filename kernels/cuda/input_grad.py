"""conv2d input gradient on the GPU: the full correlation of the delta with the 180-degree flipped kernel,
strided, as the implicit-GEMM product of ``implicit_gemm.py``: each dx element gathers the delta entries whose
windows hold it (no spread-out copy of the delta, no flipped weight matrix)."""
from .implicit_gemm import conv_product
from .memory import zero_vector


def conv2d_backward_input(dy, w, dx, stride, padding, dilation, groups):
    """dx (N, C, H, W) = the gradient of conv2d with respect to its input."""
    return conv_product(dy, w, zero_vector(dx.shape[1], dx.dtype), dx, stride, padding, dilation, groups, True, False)
