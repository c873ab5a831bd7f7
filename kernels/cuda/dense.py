"""Fully connected layer on the GPU (twin of kernels/cpu/dense.py): one tiled product ``C = op(A) @ op(B) +
bias`` with the tiles of ``implicit_gemm.py`` (a TM x TN block of C per thread block, TK terms at a time
through shared memory, an RM x RN register block per thread), its operands read in the layout they have:
the forward x @ w.T and the two gradients dy @ w and dy.T @ x, with no transposed copy."""
from numba import cuda

from ._launch import kernel, launch_grid
from .implicit_gemm import BX, BY, RM, RN, THREADS, TK, TM, TM1, TN, TN1, tile_step, zero_block
from .memory import zero_vector


@kernel("T[:,:], T[:,:], T[:], T[:,:], b1, b1")
def _gemm(A, B, bias, C, ta, tb):
    sA = cuda.shared.array((TK, TM1), dtype=C.dtype)
    sB = cuda.shared.array((TK, TN1), dtype=C.dtype)
    acc = cuda.local.array((RM, RN), dtype=C.dtype)
    M, N = C.shape
    L = A.shape[0] if ta else A.shape[1]
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    tid = ty * BX + tx
    for i0 in range(cuda.blockIdx.y * TM, M, cuda.gridDim.y * TM):
        for j0 in range(cuda.blockIdx.x * TN, N, cuda.gridDim.x * TN):
            zero_block(acc)
            for l0 in range(0, L, TK):
                for e in range(tid, TK * TM, THREADS):  # consecutive threads along A's contiguous axis
                    if ta:  # A is (L, M)
                        t = e // TM
                        m = e - t * TM
                    else:  # A is (M, L)
                        m = e // TK
                        t = e - m * TK
                    if i0 + m < M and l0 + t < L:
                        sA[t, m] = A[l0 + t, i0 + m] if ta else A[i0 + m, l0 + t]
                    else:
                        sA[t, m] = 0
                for e in range(tid, TK * TN, THREADS):  # consecutive threads along B's contiguous axis
                    if tb:  # B is (N, L)
                        j = e // TK
                        t = e - j * TK
                    else:  # B is (L, N)
                        t = e // TN
                        j = e - t * TN
                    if j0 + j < N and l0 + t < L:
                        sB[t, j] = B[j0 + j, l0 + t] if tb else B[l0 + t, j0 + j]
                    else:
                        sB[t, j] = 0
                cuda.syncthreads()
                tile_step(sA, sB, acc, tx, ty)
                cuda.syncthreads()
            for i in range(RM):
                m = i0 + ty + i * BY
                if m < M:
                    for j in range(RN):
                        n = j0 + tx + j * BX
                        if n < N:
                            C[m, n] = acc[i, j] + bias[n]


def _product(A, B, bias, C, ta, tb):
    M, N = C.shape
    launch_grid(_gemm, (-(-N // TN), -(-M // TM), 1), (BX, BY), A, B, bias, C, ta, tb)
    return C


def linear_forward(x, w, b, y):
    """y (N, O) = x (N, I) @ w (O, I).T + b."""
    return _product(x, w, b, y, False, True)


def linear_backward_input(dy, w, dx):
    """dx (N, I) = dy (N, O) @ w (O, I)."""
    return _product(dy, w, zero_vector(dx.shape[1], dx.dtype), dx, False, False)


def linear_backward_weight(dy, x, dw):
    """dw (O, I) = dy (N, O).T @ x (N, I)."""
    return _product(dy, x, zero_vector(dw.shape[1], dw.dtype), dw, True, False)
