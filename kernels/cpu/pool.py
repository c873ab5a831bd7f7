"""Pooling kernels. Max pooling records the flat index h*W + w of each window's winner inside its (n, c)
plane; its backward routes the delta there. Average pooling counts padded zeros (divisor kh*kw).
Each prange iteration owns one (n, c) plane, so overlapping windows accumulate without races.
"""
import numpy as np
from numba import prange

from ..config import cpu_kernel
from .ranges import inside, window


@cpu_kernel(parallel=False, inline=True)
def _take(v, best):
    """Whether v, met after best in the scan, replaces it: larger, or NaN (which then stays: PyTorch's rule).
    Scanning a window with this rule gives its last NaN if it has one, else the first of its largest values;
    the rule is associative, so windows may also be combined as a tree."""
    return v > best or v != v


@cpu_kernel
def _max_pool_2x2(x, y, idx):
    """2x2 windows, stride 2, no padding (LeNet's): each window as a tree, (a b) and (c d) first, then the two
    winners. Branch-free, with a dependency chain of two selects instead of three."""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        for p in range(P):
            r0 = x[n, c, 2 * p]
            r1 = x[n, c, 2 * p + 1]
            yr = y[n, c, p]
            ir = idx[n, c, p]
            for q in range(Q):
                a, b, d0, d1 = r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1]
                t1 = _take(b, a)
                m1 = b if t1 else a
                j1 = 1 if t1 else 0
                t2 = _take(d1, d0)
                m2 = d1 if t2 else d0
                j2 = W + 1 if t2 else W
                t3 = _take(m2, m1)
                yr[q] = m2 if t3 else m1
                ir[q] = 2 * (p * W + q) + (j2 if t3 else j1)
    return y


@cpu_kernel(parallel=False, inline=True)
def _take3(r, o, z):
    """The winner of the three values r[o], r[o + 1], r[o + 2] of one window row, and its column (0-2), as a
    tree of two selects; z is a zero of the index type."""
    a, b, d = r[o], r[o + np.uint64(1)], r[o + np.uint64(2)]
    t = _take(b, a)
    m = b if t else a
    j = z + 1 if t else z
    t = _take(d, m)
    return (d if t else m), (z + 2 if t else j)


@cpu_kernel
def _max_pool_3x3s2(x, y, idx):
    """3x3 windows, stride 2, no padding (AlexNet's and GoogLeNet's pooling): each window's three rows reduced
    on their own, then combined. Branch-free; the rows' chains are independent (the general scan is one
    chain of nine, 2.1-2.7x slower)."""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    z = np.int64(0)
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        for p in range(P):
            r0 = x[n, c, 2 * p]
            r1 = x[n, c, 2 * p + 1]
            r2 = x[n, c, 2 * p + 2]
            yr = y[n, c, p]
            ir = idx[n, c, p]
            for q in range(Q):
                o = np.uint64(2 * q)
                m0, j0 = _take3(r0, o, z)
                m1, j1 = _take3(r1, o, z)
                m2, j2 = _take3(r2, o, z)
                t = _take(m1, m0)
                m = m1 if t else m0
                j = j1 + W if t else j0
                t = _take(m2, m)
                yr[q] = m2 if t else m
                ir[q] = 2 * (p * W + q) + (j2 + 2 * W if t else j)
    return y


@cpu_kernel
def _max_pool_scan(x, y, idx, kh, kw, sh, sw, ph, pw):
    """Any window: each one scanned row by row (padding is -inf)."""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        for p in range(P):  # output rows
            hs, he = window(p, sh, ph, kh, H)
            for q in range(Q):  # output columns
                ws, we = window(q, sw, pw, kw, W)
                best = x[n, c, hs, ws]
                bi = hs * W + ws
                for h in range(hs, he):
                    for wc in range(ws, we):
                        v = x[n, c, h, wc]
                        if _take(v, best):
                            best = v
                            bi = h * W + wc
                y[n, c, p, q] = best
                idx[n, c, p, q] = bi
    return y


def max_pool2d_forward(x, y, idx, kh, kw, sh, sw, ph, pw):
    """y = max over each window (padding is -inf); idx = flat index of the winner. NaN wins, like PyTorch.
    (Chosen here, in Python, so a process compiles only the kernel its shapes use.)"""
    if (sh, sw, ph, pw) == (2, 2, 0, 0) and kh == kw and kh in (2, 3):
        return (_max_pool_2x2 if kh == 2 else _max_pool_3x3s2)(x, y, idx)
    return _max_pool_scan(x, y, idx, kh, kw, sh, sw, ph, pw)


@cpu_kernel
def max_pool2d_backward(dy, idx, dx):
    """dx (N, C, H*W), zeroed: dx[n, c, idx[n,c,p,q]] += dy[n,c,p,q]."""
    N, C, P, Q = dy.shape
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        for p in range(P):
            for q in range(Q):
                dx[n, c, idx[n, c, p, q]] += dy[n, c, p, q]
    return dx


@cpu_kernel
def avg_pool2d_forward(x, y, kh, kw, sh, sw, ph, pw):
    """y = sum over each window's in-bounds inputs / (kh*kw) (padded zeros count in the divisor).

    Row by row: each in-bounds kernel tap (r, s) adds input row p*sh + r - ph, read with step sw, to a float64
    row of sums; the range of outputs a tap reaches inside the input is worked out once (no branches inside
    the loops, which are contiguous in the sums and vectorise)."""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    scale = 1.0 / (kh * kw)
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        acc = np.empty(Q, np.float64)
        for p in range(P):
            acc[:] = 0.0
            for r in range(kh):
                h = p * sh + r - ph
                if h < 0 or h >= H:
                    continue
                row = x[n, c, h]
                for s in range(kw):
                    off = s - pw
                    qlo, qhi = inside(off, sw, Q, W)  # outputs whose tap column q*sw + off is inside
                    for q in range(qlo, qhi):
                        acc[q] += row[np.uint64(q * sw + off)]  # unsigned: no wraparound fix-ups
            out = y[n, c, p]
            for q in range(Q):
                out[q] = acc[q] * scale
    return y


@cpu_kernel
def avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw):
    """dx, zeroed: each dy[n,c,p,q] / (kh*kw) is added to every in-bounds input of its window.

    Row by row and tap by tap, as the forward: input row p*sh + r - ph gets g[q] added at columns q*sw + s - pw
    for the outputs q that reach inside it."""
    N, C, P, Q = dy.shape
    H, W = dx.shape[2], dx.shape[3]
    scale = 1.0 / (kh * kw)
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        g = np.empty(Q, dx.dtype)
        for p in range(P):
            src = dy[n, c, p]
            for q in range(Q):
                g[q] = src[q] * scale
            for r in range(kh):
                h = p * sh + r - ph
                if h < 0 or h >= H:
                    continue
                row = dx[n, c, h]
                for s in range(kw):
                    off = s - pw
                    qlo, qhi = inside(off, sw, Q, W)  # outputs whose tap column q*sw + off is inside
                    for q in range(qlo, qhi):
                        row[np.uint64(q * sw + off)] += g[q]
    return dx
