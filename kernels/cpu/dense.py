"""Fully connected layer kernels: each product is C = A @ B.T through the register-blocked ``gemm_nt`` (hand-
written Numba, not BLAS: BLAS's own thread pool fighting Numba's for the same cores cost more than it saved)."""
import numpy as np

from .gemm import gemm_nt


def linear_forward(x, w, b, y):
    """y (N, O) = x (N, I) @ w (O, I).T + b (O,)."""
    return gemm_nt(x, w, b, y)


def linear_backward_input(dy, w, dx):
    """dx (N, I) = dy (N, O) @ w (O, I)."""
    return gemm_nt(dy, np.ascontiguousarray(w.T), np.zeros(w.shape[1], w.dtype), dx)


def linear_backward_weight(dy, x, dw):
    """dw (O, I) = dy (N, O).T @ x (N, I)."""
    return gemm_nt(np.ascontiguousarray(dy.T), np.ascontiguousarray(x.T), np.zeros(x.shape[1], x.dtype), dw)
