"""Fully connected layer kernels. Written as Numba loops rather than BLAS calls: the LeNet-sized products are
small, and BLAS's own thread pool fighting Numba's for the same cores cost more than it saved."""
from numba import njit, prange

from ..config import CPU_PARALLEL_JIT


@njit(**CPU_PARALLEL_JIT)
def linear_forward(x, w, b, y):
    """y[n, o] = b[o] + sum_i x[n, i] * w[o, i]."""
    N, I = x.shape
    O = w.shape[0]
    for n in prange(N):  # one output row per iteration
        for o in range(O):
            acc = b[o]
            for i in range(I):  # contiguous in x and w
                acc += x[n, i] * w[o, i]
            y[n, o] = acc
    return y


@njit(**CPU_PARALLEL_JIT)
def linear_backward_input(dy, w, dx):
    """dx[n, i] = sum_o dy[n, o] * w[o, i]."""
    N, O = dy.shape
    I = w.shape[1]
    for n in prange(N):  # one input-gradient row per iteration
        for i in range(I):
            dx[n, i] = 0
        for o in range(O):
            g = dy[n, o]
            for i in range(I):  # contiguous in dx and w
                dx[n, i] += g * w[o, i]
    return dx


@njit(**CPU_PARALLEL_JIT)
def linear_backward_weight(dy, x, dw):
    """dw[o, i] = sum_n dy[n, o] * x[n, i]."""
    N, O = dy.shape
    I = x.shape[1]
    for o in prange(O):  # one weight row per iteration: the batch sum stays in one thread
        for i in range(I):
            dw[o, i] = 0
        for n in range(N):
            g = dy[n, o]
            for i in range(I):  # contiguous in dw and x
                dw[o, i] += g * x[n, i]
    return dw
