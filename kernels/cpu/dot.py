"""Register-blocked dot-product micro-kernels, and C = A @ B.T built on them: for products that reduce along
an axis contiguous in both operands (the Linear forward, x @ w.T; the few-channel stride-1 weight gradient).
``dot4x4`` keeps sixteen accumulators for a 4x4 block of C; LLVM vectorises its loop along the shared axis
(``vfmadd`` on ``zmm``/``ymm``), so each element loaded feeds four FMAs, and sums each lane at the end. Edges
of C that do not fill a 4x4 block use ``dot``. (The convolutions' main kernels are in ``micro``.)
"""
import numpy as np
from numba import prange

from ..config import cpu_kernel

@cpu_kernel(parallel=False, inline=True)
def dot(a, b, n, acc):
    """acc + sum_i a[i] * b[i] over i < n."""
    for i in range(n):
        acc += a[i] * b[i]
    return acc


@cpu_kernel(parallel=False, inline=True)
def dot4x4(a0, a1, a2, a3, b0, b1, b2, b3, n, z):
    """The 4x4 block of sums sum_i a_r[i] * b_c[i], row-major, as a 16-tuple; z is a zero of the dtype."""
    c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = z
    c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = z
    for i in range(n):  # the shared axis: contiguous in all eight rows
        x0, x1, x2, x3 = b0[i], b1[i], b2[i], b3[i]
        w = a0[i]
        c00 += w * x0
        c01 += w * x1
        c02 += w * x2
        c03 += w * x3
        w = a1[i]
        c10 += w * x0
        c11 += w * x1
        c12 += w * x2
        c13 += w * x3
        w = a2[i]
        c20 += w * x0
        c21 += w * x1
        c22 += w * x2
        c23 += w * x3
        w = a3[i]
        c30 += w * x0
        c31 += w * x1
        c32 += w * x2
        c33 += w * x3
    return (c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33)


@cpu_kernel(parallel=False, inline=True)
def dot3x5(a0, a1, a2, b, bo, n, z):
    """The 3x5 block of sums sum_{i < n} a_r[i] * b[bo[c] + i] (rows a0..a2 against five windows of one array
    b at the offsets bo, unsigned), row-major, as a 15-tuple: 15 accumulators and 8 loads per vector step
    (the few-channel weight gradient: 3 channels by 5 taps)."""
    o0, o1, o2, o3, o4 = bo[0], bo[1], bo[2], bo[3], bo[4]
    c00 = c01 = c02 = c03 = c04 = c10 = c11 = c12 = c13 = c14 = c20 = c21 = c22 = c23 = c24 = z
    for i in range(n):
        u = np.uint64(i)
        x0, x1, x2, x3, x4 = b[o0 + u], b[o1 + u], b[o2 + u], b[o3 + u], b[o4 + u]
        w = a0[i]
        c00 += w * x0
        c01 += w * x1
        c02 += w * x2
        c03 += w * x3
        c04 += w * x4
        w = a1[i]
        c10 += w * x0
        c11 += w * x1
        c12 += w * x2
        c13 += w * x3
        c14 += w * x4
        w = a2[i]
        c20 += w * x0
        c21 += w * x1
        c22 += w * x2
        c23 += w * x3
        c24 += w * x4
    return (c00, c01, c02, c03, c04, c10, c11, c12, c13, c14, c20, c21, c22, c23, c24)


@cpu_kernel(parallel=False, inline=True)
def dot1x4(a, b0, b1, b2, b3, n, z):
    """(sum_i a[i]*b0[i], ..., sum_i a[i]*b3[i]): one row against four, for the rows a 4x4 block leaves over."""
    c0 = c1 = c2 = c3 = z
    for i in range(n):
        w = a[i]
        c0 += w * b0[i]
        c1 += w * b1[i]
        c2 += w * b2[i]
        c3 += w * b3[i]
    return c0, c1, c2, c3


@cpu_kernel(parallel=False, inline=True)
def block_nt(A, B, n, out, z):
    """out[i, j] = sum_{l < n} A[i, l] * B[j, l] for every row i of A and j of B (out is written, not added to).

    4x4 blocks go through dot4x4, rows left over through dot1x4, the last corner through dot.
    """
    M, N = A.shape[0], B.shape[0]
    M4, N4 = M - M % 4, N - N % 4
    for i in range(0, M4, 4):
        for j in range(0, N4, 4):
            t = dot4x4(A[i], A[i + 1], A[i + 2], A[i + 3], B[j], B[j + 1], B[j + 2], B[j + 3], n, z)
            for a in range(4):
                for b in range(4):
                    out[i + a, j + b] = t[4 * a + b]
        for j in range(N4, N):
            for a in range(4):
                out[i + a, j] = dot(A[i + a], B[j], n, z)
    for i in range(M4, M):
        for j in range(0, N4, 4):
            out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = dot1x4(A[i], B[j], B[j + 1], B[j + 2], B[j + 3], n, z)
        for j in range(N4, N):
            out[i, j] = dot(A[i], B[j], n, z)


@cpu_kernel
def gemm_nt(A, B, bias, C):
    """C[i, j] = bias[j] + sum_l A[i, l] * B[j, l]; parallel over blocks of four rows of C."""
    M, L = A.shape
    N = B.shape[0]
    z = np.zeros(1, C.dtype)[0]
    for ib in prange((M + 3) // 4):  # each iteration owns rows 4*ib .. 4*ib+3 of C
        i0 = 4 * ib
        i1 = min(i0 + 4, M)
        block_nt(A[i0:i1], B, L, C[i0:i1], z)
        for i in range(i0, i1):
            for j in range(N):
                C[i, j] += bias[j]
    return C
