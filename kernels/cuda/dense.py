"""Fully connected layer on the GPU (twin of kernels/cpu/dense.py), one thread per element of the product,
each a dot product: the forward C = A @ B.T, and the two gradients with their operands read in the layout
they have (dy @ w and dy.T @ x), so no transposed copy is made. (A shared-memory tiled version was tried:
Numba's CUDA simulator, the only place CI can run it, needs minutes per LeNet-sized product because of its
barriers, so the plain kernels stay until they are measured on a GPU.)"""
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


@kernel("T[:,:], T[:,:], T[:,:]")
def _gemm_nn(A, B, C):
    M, N = C.shape
    L = A.shape[1]
    for e in range(cuda.grid(1), M * N, cuda.gridsize(1)):  # grid-stride loop over C
        i = e // N
        j = e % N
        acc = A[i, 0] * B[0, j]
        for t in range(1, L):
            acc += A[i, t] * B[t, j]
        C[i, j] = acc


@kernel("T[:,:], T[:,:], T[:,:]")
def _gemm_tn(A, B, C):
    M, N = C.shape
    L = A.shape[0]
    for e in range(cuda.grid(1), M * N, cuda.gridsize(1)):  # grid-stride loop over C
        i = e // N
        j = e % N
        acc = A[0, i] * B[0, j]
        for t in range(1, L):
            acc += A[t, i] * B[t, j]
        C[i, j] = acc


def linear_forward(x, w, b, y):
    """y (N, O) = x (N, I) @ w (O, I).T + b."""
    launch(_gemm_nt, y.size, x, w, b, y)
    return y


def linear_backward_input(dy, w, dx):
    """dx (N, I) = dy (N, O) @ w (O, I)."""
    launch(_gemm_nn, dx.size, dy, w, dx)
    return dx


def linear_backward_weight(dy, x, dw):
    """dw (O, I) = dy (N, O).T @ x (N, I)."""
    launch(_gemm_tn, dw.size, dy, x, dw)
    return dw
