"""Elementwise ReLU kernels over flat (1-D) views."""
from numba import njit, prange

from ..config import CPU_PARALLEL_JIT


@njit(**CPU_PARALLEL_JIT)
def relu_forward(x, y):
    """y = max(x, 0); NaN stays NaN."""
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v <= 0 else v
    return y


@njit(**CPU_PARALLEL_JIT)
def relu_backward(dy, x, dx):
    """dx = dy where x > 0, else 0."""
    for i in prange(x.size):
        dx[i] = dy[i] if x[i] > 0 else 0
    return dx
