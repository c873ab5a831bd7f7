"""Fully connected layer kernels, hand-written Numba rather than BLAS (BLAS's own thread pool fighting Numba's
for the same cores cost more than it saved).

The forward, x @ w.T, reduces along rows that are contiguous in both operands: the dot-form ``gemm_nt``. The
two gradients reduce along a column of one operand: ``_gemm`` computes C (M, N) = A @ B + bias on the
outer-product micro-kernel with A read in place through two strides, A[m, k] = Xa[m*sam + k*sak], so the
transposed operand (dy.T in the weight gradient) needs no copy.
"""
import numpy as np
from numba import prange

from ..config import cpu_kernel
from .dot import gemm_nt
from .micro import MR, NR, accumulators, outer_acc


@cpu_kernel
def _gemm(Xa, sam, sak, M, K, B, bias, C):
    """C (M, N) = A (M, K) @ B (K, N) + bias (N,), A[m, k] = Xa[m*sam + k*sak].

    Work items are MR x NR blocks of C, each owning its block. A last block of columns that would read past
    B's end is served from a zero-padded copy of those columns."""
    N = B.shape[1]
    if M == 0 or N == 0:
        return C
    MB = (M + MR - 1) // MR
    NB = (N + NR - 1) // NR
    bf = B.reshape(K * N)
    ak = np.empty(K, np.uint64)  # (a loop, not an array expression: see product.unpacked_product)
    for k in range(K):
        ak[k] = np.uint64(k) * np.uint64(sak)
    tail = np.zeros(K * NR, B.dtype)  # columns NB*NR - NR .. N of B, zero-padded to NR
    n0t = (NB - 1) * NR
    for k in range(K):
        for j in range(N - n0t):
            tail[k * NR + j] = B[k, n0t + j]
    uN, uNR = np.uint64(N), np.uint64(NR)
    for item in prange(MB * NB):  # item (mb, nb) owns C[mb*MR : mb*MR + MR, nb*NR : nb*NR + NR]
        mb = item // NB
        n0 = (item - mb * NB) * NR
        m0 = mb * MR
        acc = accumulators(C.dtype)
        ao = np.empty(MR, np.uint64)
        for i in range(MR):  # rows past M repeat the last one (not stored)
            ao[i] = min(m0 + i, M - 1) * sam
        for t in range(MR * NR):
            acc[t] = 0
        if n0 + NR > N and K > 0:
            outer_acc(Xa, ao, ak, tail, np.uint64(0), uNR, K, acc)
        else:
            outer_acc(Xa, ao, ak, bf, np.uint64(n0), uN, K, acc)
        for i in range(min(MR, M - m0)):
            row = C[m0 + i]
            for j in range(min(NR, N - n0)):
                row[n0 + j] = acc[i * NR + j] + bias[n0 + j]
    return C


def linear_forward(x, w, b, y):
    """y (N, O) = x (N, I) @ w (O, I).T + b (O,)."""
    return gemm_nt(x, w, b, y)


def linear_backward_input(dy, w, dx):
    """dx (N, I) = dy (N, O) @ w (O, I)."""
    N, O = dy.shape
    return _gemm(dy.reshape(N * O), O, 1, N, O, w, np.zeros(w.shape[1], w.dtype), dx)


def linear_backward_weight(dy, x, dw):
    """dw (O, I) = dy (N, O).T @ x (N, I): A = dy.T read in place (row stride 1, column stride O)."""
    N, O = dy.shape
    return _gemm(dy.reshape(N * O), 1, O, O, N, x, np.zeros(x.shape[1], x.dtype), dw)
