"""Pooling kernels. Max pooling records the flat index h*W + w of each window's winner inside its (n, c)
plane; its backward routes the delta there. Average pooling counts padded zeros (divisor kh*kw).
Each prange iteration owns one (n, c) plane, so overlapping windows accumulate without races.
"""
from numba import prange

from ..config import cpu_kernel


@cpu_kernel(parallel=False, inline=True)
def window(o, stride, pad, k, size):
    """[start, end) of output o's window along one axis, clipped to the input (padding lies outside)."""
    start = o * stride - pad
    return max(start, 0), min(start + k, size)


@cpu_kernel
def max_pool2d_forward(x, y, idx, kh, kw, sh, sw, ph, pw):
    """y = max over each window (padding is -inf); idx = flat index of the winner. NaN wins, like PyTorch."""
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
                        if v > best or v != v:  # larger, or NaN (which then stays: PyTorch's rule)
                            best = v
                            bi = h * W + wc
                y[n, c, p, q] = best
                idx[n, c, p, q] = bi
    return y


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
    """y = sum over each window's in-bounds inputs / (kh*kw) (padded zeros count in the divisor)."""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        for p in range(P):
            hs, he = window(p, sh, ph, kh, H)
            for q in range(Q):
                ws, we = window(q, sw, pw, kw, W)
                acc = 0.0  # float64 accumulator
                for h in range(hs, he):
                    for wc in range(ws, we):
                        acc += x[n, c, h, wc]
                y[n, c, p, q] = acc / (kh * kw)
    return y


@cpu_kernel
def avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw):
    """dx, zeroed: each dy[n,c,p,q] / (kh*kw) is added to every in-bounds input of its window."""
    N, C, P, Q = dy.shape
    H, W = dx.shape[2], dx.shape[3]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        n = nc // C
        c = nc - n * C
        for p in range(P):
            hs, he = window(p, sh, ph, kh, H)
            for q in range(Q):
                ws, we = window(q, sw, pw, kw, W)
                g = dy[n, c, p, q] / (kh * kw)
                for h in range(hs, he):
                    for wc in range(ws, we):
                        dx[n, c, h, wc] += g
    return dx


