"""conv2d kernels: forward (cross-correlation), weight gradient, bias gradient, and the delta spreading that
turns the input gradient into a forward pass (full convolution with the 180-degree-flipped kernel).

No checking here: shapes, dtypes and contiguity are the caller's contract (fastconv.functional).
Every prange iteration writes only the output plane or weight slice it owns.
"""
from numba import njit, prange

from ..config import CPU_PARALLEL_JIT


@njit(**CPU_PARALLEL_JIT)
def conv2d_forward(xp, w, bias, y, sh, sw, dh, dw, relu):
    """y[n,k,p,q] = bias[k] + sum_{c,r,s} w[k,c,r,s] * xp[n,c,p*sh+r*dh, q*sw+s*dw]; xp is pre-padded.

    With ``relu`` the result is clamped at zero (fused epilogue).
    """
    N, C = xp.shape[0], xp.shape[1]
    K, R, S = w.shape[0], w.shape[2], w.shape[3]
    P, Q = y.shape[2], y.shape[3]
    for nk in prange(N * K):  # one (n, k) output plane per iteration
        n = nk // K
        k = nk - n * K
        b = bias[k]
        for p in range(P):  # output rows
            yrow = y[n, k, p]
            for q in range(Q):
                yrow[q] = b
            for c in range(C):  # input channels
                for r in range(R):  # kernel rows
                    xrow = xp[n, c, p * sh + r * dh]
                    for s in range(S):  # kernel columns
                        wv = w[k, c, r, s]
                        off = s * dw
                        for q in range(Q):  # output columns: contiguous when sw == 1
                            yrow[q] += wv * xrow[off + q * sw]
            if relu:
                for q in range(Q):
                    if yrow[q] < 0:
                        yrow[q] = 0
    return y


@njit(**CPU_PARALLEL_JIT)
def conv2d_backward_weight(xp, dy, dwt, sh, sw, dh, dw):
    """dwt[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * xp[n,c,p*sh+r*dh, q*sw+s*dw]; dwt arrives zeroed."""
    N, C = xp.shape[0], xp.shape[1]
    K, R, S = dwt.shape[0], dwt.shape[2], dwt.shape[3]
    P, Q = dy.shape[2], dy.shape[3]
    for kc in prange(K * C):  # one (k, c) kernel slice per iteration: the batch sum stays in one thread
        k = kc // C
        c = kc - k * C
        for r in range(R):
            for s in range(S):
                acc = dwt[k, c, r, s]  # a zero of the output dtype
                off = s * dw
                for n in range(N):
                    for p in range(P):
                        xrow = xp[n, c, p * sh + r * dh]
                        dyrow = dy[n, k, p]
                        for q in range(Q):  # output columns
                            acc += dyrow[q] * xrow[off + q * sw]
                dwt[k, c, r, s] = acc
    return dwt


@njit(**CPU_PARALLEL_JIT)
def conv2d_backward_bias(dy, db):
    """db[k] = sum_{n,p,q} dy[n,k,p,q]; db arrives zeroed."""
    N, K, P, Q = dy.shape
    for k in prange(K):  # one bias entry per iteration
        acc = db[k]
        for n in range(N):
            for p in range(P):
                row = dy[n, k, p]
                for q in range(Q):
                    acc += row[q]
        db[k] = acc
    return db


@njit(**CPU_PARALLEL_JIT)
def dilate_pad(dy, z, sh, sw, oh, ow):
    """Spread the delta by the stride into zeroed z: z[n,k, p*sh+oh, q*sw+ow] = dy[n,k,p,q], where inside z.

    Rows and columns that fall outside z belong to the padding only and are dropped.
    """
    N, K, P, Q = dy.shape
    Hz, Wz = z.shape[2], z.shape[3]
    for nk in prange(N * K):  # one (n, k) plane per iteration
        n = nk // K
        k = nk - n * K
        for p in range(P):
            h = p * sh + oh
            if h < 0 or h >= Hz:
                continue
            for q in range(Q):
                wc = q * sw + ow
                if wc >= 0 and wc < Wz:
                    z[n, k, h, wc] = dy[n, k, p, q]
    return z
