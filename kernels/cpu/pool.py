"""Pooling kernels. Max pooling records the flat index h*W + w of each window's winner inside its (n, c)
plane; its backward routes the delta there. Average pooling divides output (p, q) by inv_h[p] * inv_w[q]'s
inverse: the divisor of a window is a product of a row and a column count (count_include_pad, ceil_mode and
per-side padding only change those counts, which the caller works out).
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
def _max_pool_2x2(x, y, idx, keep):
    """2x2 windows, stride 2, no padding (LeNet's): each window as a tree, (a b) and (c d) first, then the two
    winners. Branch-free, with a dependency chain of two selects instead of three. Indices only with ``keep``
    (storing them is most of the time: without, the maxima vectorise)."""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        for p in range(P):
            r0 = x[n, c, 2 * p]
            r1 = x[n, c, 2 * p + 1]
            yr = y[n, c, p]
            ir = idx[n, c, p] if keep else idx[0, 0, 0]  # (without keep, idx is a 1x1x1x1 stand-in)
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
                if keep:
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
def _max_pool_3x3s2(x, y, idx, keep):
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
            ir = idx[n, c, p] if keep else idx[0, 0, 0]  # (without keep, idx is a 1x1x1x1 stand-in)
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
                if keep:
                    ir[q] = 2 * (p * W + q) + (j2 + 2 * W if t else j)
    return y


@cpu_kernel
def _max_pool_scan(x, y, idx, kh, kw, sh, sw, ph, pw, dil_h, dil_w, keep):
    """Any window, dilated or not: each one scanned row by row over its taps inside x (padding is -inf; the
    caller guarantees every window holds at least one input)."""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        for p in range(P):  # output rows
            h0 = p * sh - ph
            i0, i1 = inside(h0, dil_h, kh, H)  # the window's rows inside x
            for q in range(Q):  # output columns
                w0 = q * sw - pw
                j0, j1 = inside(w0, dil_w, kw, W)
                best = x[n, c, h0 + i0 * dil_h, w0 + j0 * dil_w]
                bi = (h0 + i0 * dil_h) * W + w0 + j0 * dil_w
                for i in range(i0, i1):
                    h = h0 + i * dil_h
                    for j in range(j0, j1):
                        wc = w0 + j * dil_w
                        v = x[n, c, h, wc]
                        if _take(v, best):
                            best = v
                            bi = h * W + wc
                y[n, c, p, q] = best
                if keep:
                    idx[n, c, p, q] = bi
    return y


def max_pool2d_forward(x, y, idx, kh, kw, sh, sw, ph, pw, dil_h, dil_w, keep):
    """y = max over each window (padding is -inf); with ``keep``, idx = flat index of the winner (int64 or
    int32; without, idx is not touched). NaN wins, like PyTorch.
    (Chosen here, in Python, so a process compiles only the kernel its shapes use: the trees need undilated
    2x2 or 3x3 windows at stride 2, unpadded, all inside x.)"""
    P, Q = y.shape[2], y.shape[3]
    inside_x = (P - 1) * sh + kh <= x.shape[2] and (Q - 1) * sw + kw <= x.shape[3]
    if (sh, sw, ph, pw, dil_h, dil_w) == (2, 2, 0, 0, 1, 1) and kh == kw and kh in (2, 3) and inside_x:
        return (_max_pool_2x2 if kh == 2 else _max_pool_3x3s2)(x, y, idx, keep)
    return _max_pool_scan(x, y, idx, kh, kw, sh, sw, ph, pw, dil_h, dil_w, keep)


@cpu_kernel
def max_pool2d_backward(dy, idx, dx):
    """dx (N, C, H*W), uninitialised: each plane is zeroed, then dx[n, c, idx[n,c,p,q]] += dy[n,c,p,q]. (Zeroing
    here, plane by plane while it is in cache, instead of asking for a zeroed array: np.zeros of a large array
    is a serial memset when glibc serves it from its heap.)"""
    N, C, P, Q = dy.shape
    HW = dx.shape[2]
    z = np.zeros(1, dx.dtype)[0]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        plane = dx[n, c]
        for j in range(HW):
            plane[j] = z
        for p in range(P):
            for q in range(Q):
                dx[n, c, idx[n, c, p, q]] += dy[n, c, p, q]
    return dx


@cpu_kernel(parallel=False, inline=True)
def _add_every(acc, src, off, step, lo, hi):
    """acc[q] += src[q*step + off] for lo <= q < hi (unsigned indices; the common step 2 is spelt out, so
    LLVM sees a constant stride and vectorises the loads)."""
    if step == 2:
        for q in range(lo, hi):
            acc[q] += src[np.uint64(2 * q + off)]
    else:
        for q in range(lo, hi):
            acc[q] += src[np.uint64(q * step + off)]


@cpu_kernel(parallel=False, inline=True)
def _spread_every(dst, src, off, step, lo, hi):
    """dst[q*step + off] += src[q] for lo <= q < hi: the transpose of ``_add_every``."""
    if step == 2:
        for q in range(lo, hi):
            dst[np.uint64(2 * q + off)] += src[q]
    else:
        for q in range(lo, hi):
            dst[np.uint64(q * step + off)] += src[q]


@cpu_kernel
def avg_pool2d_forward(x, y, kh, kw, sh, sw, ph, pw, inv_h, inv_w):
    """y = sum over each window's in-bounds inputs * inv_h[p] * inv_w[q] (the reciprocal of its divisor).

    Separably, output row by output row: the window's in-bounds input rows are summed into a float64 row of
    column sums (contiguous, vectorised), then each kernel column s adds those sums, read with step sw, to
    the outputs it reaches inside the input (worked out once: no branches in the loops). kh + kw passes over
    short rows instead of kh*kw."""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        cols = np.empty(W, np.float64)
        acc = np.empty(Q, np.float64)
        for p in range(P):
            h0, h1 = window(p, sh, ph, kh, H)
            for j in range(W):
                cols[j] = 0.0
            for h in range(h0, h1):
                row = x[n, c, h]
                for j in range(W):
                    cols[j] += row[j]
            for q in range(Q):
                acc[q] = 0.0
            for s in range(kw):
                qlo, qhi = inside(s - pw, sw, Q, W)  # outputs whose tap column q*sw + s - pw is inside
                _add_every(acc, cols, s - pw, sw, qlo, qhi)
            out = y[n, c, p]
            ih = inv_h[p]
            for q in range(Q):
                out[q] = acc[q] * (ih * inv_w[q])
    return y


@cpu_kernel
def avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, inv_h, inv_w):
    """dx, uninitialised: each plane is zeroed (as in ``max_pool2d_backward``), then each
    dy[n,c,p,q] * inv_h[p] * inv_w[q] is added to every in-bounds input of its window.

    Separably, as the forward: output row p's deltas are spread along one input-wide row (kernel column s
    adds dy[p, q] at column q*sw + s - pw), which is then added to each in-bounds input row of the window."""
    N, C, P, Q = dy.shape
    H, W = dx.shape[2], dx.shape[3]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        for h in range(H):
            row = dx[n, c, h]
            for j in range(W):
                row[j] = 0
        spread = np.empty(W, np.float64)
        src = np.empty(Q, np.float64)
        for p in range(P):
            h0, h1 = window(p, sh, ph, kh, H)
            if h0 >= h1:
                continue
            row_in = dy[n, c, p]
            ih = inv_h[p]
            for q in range(Q):
                src[q] = row_in[q] * (ih * inv_w[q])
            for j in range(W):
                spread[j] = 0
            for s in range(kw):
                qlo, qhi = inside(s - pw, sw, Q, W)
                _spread_every(spread, src, s - pw, sw, qlo, qhi)
            for h in range(h0, h1):
                row = dx[n, c, h]
                for j in range(W):
                    row[j] += spread[j]
    return dx
