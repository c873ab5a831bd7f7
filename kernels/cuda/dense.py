"""Fully connected layer on the GPU (twin of kernels/cpu/dense.py): C = A @ B.T + bias, one thread per element
of C, each a dot product along the shared axis. The transposes of the backward passes are strided views, read
in place. (A shared-memory tiled version was tried: Numba's CUDA simulator, the only place CI can run it, needs
minutes per LeNet-sized product because of its barriers, so the plain kernel stays until it is measured on a
GPU.)"""
from numba import cuda

from ._launch import kernel, launch


@kernel("T[:,:], T[:,:], T[:], T[:,:]")
def _gemm_nt(A, B, bias, C):
    M, N = C.shape
    L = A.shape[1]
    for e in range(cuda.grid(1), M * N, cuda.gridsize(1)):  # grid-stride loop over C
        i = e // N
        j = e % N
        acc = bias[j]
        for t in range(L):
            acc += A[i, t] * B[j, t]
        C[i, j] = acc


def gemm_nt(A, B, bias, C):
    launch(_gemm_nt, C.size, A, B, bias, C)
    return C


def _zeros(n, dtype):
    from .memory import zeros

    return zeros((n,), dtype)


def linear_forward(x, w, b, y):
    """y (N, O) = x (N, I) @ w (O, I).T + b."""
    return gemm_nt(x, w, b, y)


def linear_backward_input(dy, w, dx):
    """dx (N, I) = dy (N, O) @ w (O, I)."""
    return gemm_nt(dy, w.T, _zeros(w.shape[1], w.dtype), dx)


def linear_backward_weight(dy, x, dw):
    """dw (O, I) = dy (N, O).T @ x (N, I)."""
    return gemm_nt(dy.T, x.T, _zeros(x.shape[1], x.dtype), dw)
