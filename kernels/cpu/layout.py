"""Layouts of the convolution operands: zero padding (``pad_into``) and the split of a padded input into its
stride phases (``pad_phases``), after which a strided convolution is a stride-1 product over the phase planes.

No checking here: shapes, dtypes and contiguity are the caller's contract.
"""
import numpy as np
from numba import prange

from ..config import cpu_kernel
from .ranges import inside


@cpu_kernel
def pad_into(x, xp, top, left):
    """xp (N, C, >= H + top, >= W + left), uninitialised, = x placed at row ``top`` and column ``left`` of each
    plane, zeros everywhere else. Flat unsigned indices: the rows are short, so the per-row work must be
    small."""
    N, C, H, W = x.shape
    Hp, Wp = xp.shape[2], xp.shape[3]
    xf = x.reshape(N * C * H * W)
    pf = xp.reshape(N * C * Hp * Wp)
    z = np.zeros(1, xp.dtype)[0]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        src = np.uint64(nc * H * W)
        dst = np.uint64(nc * Hp * Wp)
        for v in range(top * Wp + left):  # the top rows, and the left border of the first data row
            pf[dst + np.uint64(v)] = z
        for h in range(H):
            d = dst + np.uint64((top + h) * Wp + left)
            sh = src + np.uint64(h * W)
            for v in range(W):
                pf[d + np.uint64(v)] = xf[sh + np.uint64(v)]
            # the right border of this row and the left border of the next (or the bottom rows)
            e = d + np.uint64(W)
            gap = Wp - W if h < H - 1 else Wp - W - left + (Hp - top - H) * Wp
            for v in range(gap):
                pf[e + np.uint64(v)] = z
        if H == 0:
            for v in range(top * Wp + left, Hp * Wp):
                pf[dst + np.uint64(v)] = z
    return xp


@cpu_kernel
def pad_phases(x, xs, ph, pw, sh, sw):
    """Zero-pad x by (ph, pw) and split it into its stride phases: xs[n, (c*sh + a)*sw + b, i, j] =
    x[n, c, i*sh + a - ph, j*sw + b - pw], zero outside x. A strided convolution of x is then a stride-1
    product over the phase planes (``conv2d_forward_phased``)."""
    N, C, H, W = x.shape
    Hs, Ws = xs.shape[2], xs.shape[3]
    F = sh * sw
    xf = x.reshape(N * C * H * W)
    sf = xs.reshape(N * C * F * Hs * Ws)
    z = np.zeros(1, xs.dtype)[0]
    for nc in prange(N * C):  # one input plane, and its F phase planes, per iteration
        for a in range(sh):
            for b in range(sw):
                d = np.uint64((nc * F + a * sw + b) * Hs * Ws)
                jlo, jhi = inside(b - pw, sw, Ws, W)  # the j whose column j*sw + b - pw is inside x
                for i in range(Hs):
                    h = i * sh + a - ph
                    o = d + np.uint64(i * Ws)
                    if h < 0 or h >= H:
                        for j in range(Ws):
                            sf[o + np.uint64(j)] = z
                        continue
                    for j in range(jlo):
                        sf[o + np.uint64(j)] = z
                    s0 = np.uint64((nc * H + h) * W + jlo * sw + b - pw)
                    _take_every(xf, s0, sf, o + np.uint64(jlo), jhi - jlo, sw)
                    for j in range(jhi, Ws):
                        sf[o + np.uint64(j)] = z
    return xs


@cpu_kernel(parallel=False, inline=True)
def _take_every(src, s0, dst, d0, count, step):
    """dst[d0 + j] = src[s0 + j*step] for j < count (unsigned offsets; the common step 2 is spelt out, so
    LLVM sees a constant stride)."""
    if step == 2:
        for j in range(count):
            u = np.uint64(j)
            dst[d0 + u] = src[s0 + np.uint64(2) * u]
    else:
        us = np.uint64(step)
        for j in range(count):
            u = np.uint64(j)
            dst[d0 + u] = src[s0 + us * u]
