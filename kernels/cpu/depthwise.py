"""Depthwise convolution (groups == C): each output channel k reads one input channel, k // m, where m = K / C
is the channel multiplier. A per-channel stencil, memory-bound: the kernels sweep rows, one tap at a time,
with the valid range of each tap worked out once (``ranges.inside``), so the inner loops are contiguous (for
stride 1) and branch-free.

Each prange iteration owns what it writes: a (n, k) output plane in the forward, a (n, c) input plane in the
input gradient (the m output channels that read it are summed there in order), a weight row in the weight
gradient. No checking here: shapes, dtypes and contiguity are the caller's contract.
"""
import numpy as np
from numba import prange

from ..config import cpu_kernel
from .ranges import inside


@cpu_kernel(parallel=False, inline=True)
def _add_taps(dst, src, wv, off, step, lo, hi):
    """dst[q] += wv * src[q*step + off] for lo <= q < hi (unsigned indices; step 1 spelt out)."""
    if step == 1:
        for q in range(lo, hi):
            dst[np.uint64(q)] += wv * src[np.uint64(q + off)]
    else:
        for q in range(lo, hi):
            dst[np.uint64(q)] += wv * src[np.uint64(q * step + off)]


@cpu_kernel
def depthwise_forward(x, w, bias, y, sh, sw, ph, pw, dil_h, dil_w, relu):
    """y[n,k,p,q] = bias[k] + sum_{r,s} w[k,0,r,s] * x[n, k // m, p*sh + r*dil_h - ph, q*sw + s*dil_w - pw],
    zeros outside x; ``relu`` clamps at zero. y is uninitialised."""
    N, C, H, W = x.shape
    K, R, S = w.shape[0], w.shape[2], w.shape[3]
    P, Q = y.shape[2], y.shape[3]
    m = K // C
    z = np.zeros(1, y.dtype)[0]
    for nk in prange(N * K):  # one output plane per iteration
        n = nk // K
        k = nk - n * K
        c = k // m
        for p in range(P):
            out = y[n, k, p]
            for q in range(Q):
                out[q] = bias[k]
            for r in range(R):
                h = p * sh + r * dil_h - ph
                if h < 0 or h >= H:
                    continue
                row = x[n, c, h]
                for s in range(S):
                    off = s * dil_w - pw
                    lo, hi = inside(off, sw, Q, W)
                    _add_taps(out, row, w[k, 0, r, s], off, sw, lo, hi)
            if relu:
                for q in range(Q):
                    if out[q] < 0:
                        out[q] = z
    return y


@cpu_kernel
def depthwise_backward_input(dy, w, dx, sh, sw, ph, pw, dil_h, dil_w):
    """dx, uninitialised, = the input gradient: dx[n,c,i,j] = sum over the m output channels k of c and the
    taps (r, s) of w[k,0,r,s] * dy[n,k,p,q] where i = p*sh + r*dil_h - ph, j = q*sw + s*dil_w - pw."""
    N, K, P, Q = dy.shape
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    R, S = w.shape[2], w.shape[3]
    m = K // C
    for nc in prange(N * C):  # one input plane per iteration
        n = nc // C
        c = nc - n * C
        for h in range(H):
            row = dx[n, c, h]
            for j in range(W):
                row[j] = 0
        for k in range(c * m, c * m + m):
            for p in range(P):
                src = dy[n, k, p]
                for r in range(R):
                    h = p * sh + r * dil_h - ph
                    if h < 0 or h >= H:
                        continue
                    row = dx[n, c, h]
                    for s in range(S):
                        off = s * dil_w - pw
                        lo, hi = inside(off, sw, Q, W)
                        wv = w[k, 0, r, s]
                        if sw == 1:
                            for q in range(lo, hi):
                                row[np.uint64(q + off)] += wv * src[np.uint64(q)]
                        else:
                            for q in range(lo, hi):
                                row[np.uint64(q * sw + off)] += wv * src[np.uint64(q)]
    return dx


@cpu_kernel
def depthwise_backward_weight(dy, x, dw, db, sh, sw, ph, pw, dil_h, dil_w):
    """dw[k,0,r,s] += sum_{n,p,q} dy[n,k,p,q] * x[n, k // m, p*sh + r*dil_h - ph, q*sw + s*dil_w - pw]; and
    db[k] += sum dy[n,k] when db has K entries (not 0). Each iteration owns one output channel's weights and
    sums the batch in order: the same result for any thread count."""
    N, K, P, Q = dy.shape
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    R, S = dw.shape[2], dw.shape[3]
    m = K // C
    bias = db.size > 0
    for k in prange(K):  # one output channel per iteration
        c = k // m
        acc = np.zeros(R * S, np.float64)
        sdb = 0.0
        for n in range(N):
            for p in range(P):
                src = dy[n, k, p]
                if bias:
                    for q in range(Q):
                        sdb += src[q]
                for r in range(R):
                    h = p * sh + r * dil_h - ph
                    if h < 0 or h >= H:
                        continue
                    row = x[n, c, h]
                    for s in range(S):
                        off = s * dil_w - pw
                        lo, hi = inside(off, sw, Q, W)
                        t = 0.0
                        if sw == 1:
                            for q in range(lo, hi):
                                t += src[np.uint64(q)] * row[np.uint64(q + off)]
                        else:
                            for q in range(lo, hi):
                                t += src[np.uint64(q)] * row[np.uint64(q * sw + off)]
                        acc[r * S + s] += t
        for r in range(R):
            for s in range(S):
                dw[k, 0, r, s] += acc[r * S + s]
        if bias:
            db[k] += sdb
    return dw
