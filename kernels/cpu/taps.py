"""Tap tables and weight panels of the convolution products.

A tap is one (channel, kernel row, kernel column) term of a convolution sum. The unpacked products read their
right operand in place through a table of where each tap reads, relative to an output position, and their
left operand (the weights) from panels laid out for the register block.
"""
import numpy as np

from ..config import cpu_kernel
from .blocks import NR


@cpu_kernel(parallel=False, inline=True)
def pack_weights(w2, K, CRS, rows):
    """(K, >= CRS) weight rows -> (ceil(K/rows), CRS, rows) panels, ap[kb, crs, i] = w2[kb*rows + i, crs],
    zero for the rows past K."""
    KB = (K + rows - 1) // rows
    ap = np.zeros((KB, CRS, rows), w2.dtype)
    for k in range(K):
        kb = k // rows
        for c in range(CRS):
            ap[kb, c, k - kb * rows] = w2[k, c]
    return ap


@cpu_kernel(parallel=False, inline=True)
def tap_offsets(C, R, S, plane, row, dil_h, dil_w):
    """offs[(c*R + r)*S + s] = c*plane + r*dil_h*row + s*dil_w: where tap (c, r, s) reads, relative to the top-left
    input of its output position, in a flattened (C, rows, row) image."""
    offs = np.empty(C * R * S, np.int64)
    i = 0
    for c in range(C):
        for r in range(R):
            for s in range(S):
                offs[i] = c * plane + r * dil_h * row + s * dil_w
                i += 1
    return offs


@cpu_kernel(parallel=False)
def forward_taps(w, Hs, Ws, sh, sw, dil_h, dil_w):
    """The taps of a forward over the stride phases of its input (planes of Hs x Ws, ``pad_phases``; stride 1
    has one phase, the padded input itself), in the order (r, c, s), so the rows they read do not decrease:
    tap (r, c, s) reads phase plane (c, (r*dil_h) % sh, (s*dil_w) % sw) at row (r*dil_h) // sh and column (s*dil_w) // sw
    from its output's position. Returns (offs, rows, weights (K, T))."""
    K, C, R, S = w.shape
    T = C * R * S
    wt = np.empty((K, T), w.dtype)
    offs = np.empty(T, np.int64)
    rows = np.empty(T, np.int64)
    for r in range(R):
        for c in range(C):
            for s in range(S):
                t = (r * C + c) * S + s
                plane = (c * sh + (r * dil_h) % sh) * sw + (s * dil_w) % sw
                offs[t] = plane * Hs * Ws + (r * dil_h) // sh * Ws + (s * dil_w) // sw
                rows[t] = (r * dil_h) // sh
                for k in range(K):
                    wt[k, t] = w[k, c, r, s]
    return offs, rows, wt


def phase_margin(n, step, pad, k, dil, m_in):
    """For one axis of the input gradient: the zero border (lead, size) to lay the delta in. Output
    i = rho + step*m (phase rho) takes delta m + e from kernel tap t, e = (rho + pad - t*dil) / step where
    that divides; the delta must sit at ``lead`` in an axis of ``size`` so that every read m + e + lead of
    every phase lies in [0, size)."""
    lo, hi = 0, m_in
    for rho in range(min(step, n)):
        M = (n - rho + step - 1) // step
        for t in range(k):
            d = rho + pad - t * dil
            if d % step == 0:
                lo = min(lo, d // step)
                hi = max(hi, M + d // step)
    return -lo, hi - lo


@cpu_kernel(parallel=False)
def input_grad_taps(w, H, W, sh, sw, dil_h, dil_w, ph, pw, top, left, Hd, Wd):
    """The taps of every stride phase of the input gradient (see ``conv2d_backward_input_phased``), phase
    after phase, each in an order whose rows do not decrease; the delta lies at (top, left) in planes of
    Hd x Wd. Returns (offs, rows, tstart, grids, weights (C, T)) for ``unpacked_product``: phase j has the taps
    tstart[j] <= t < tstart[j + 1] and the output grid grids[j] = (P, Q, rho, sig). Phases that no tap reaches
    are left out."""
    K, C, R, S = w.shape
    grids = np.empty((sh * sw, 4), np.int64)
    tstart = np.zeros(sh * sw + 1, np.int64)
    J = 0
    for rho in range(min(sh, H)):
        for sig in range(min(sw, W)):
            nr = 0
            for r in range(R):
                if (rho + ph - r * dil_h) % sh == 0:
                    nr += 1
            ns = 0
            for s in range(S):
                if (sig + pw - s * dil_w) % sw == 0:
                    ns += 1
            if nr * ns > 0:
                grids[J] = ((H - rho + sh - 1) // sh, (W - sig + sw - 1) // sw, rho, sig)
                tstart[J + 1] = tstart[J] + nr * K * ns
                J += 1
    T = tstart[J]
    wt = np.empty((C, T), w.dtype)
    offs = np.empty(T, np.int64)
    rows = np.empty(T, np.int64)
    t = 0
    for jp in range(J):
        rho, sig = grids[jp, 2], grids[jp, 3]
        for r in range(R - 1, -1, -1):  # rows read rise as r falls
            if (rho + ph - r * dil_h) % sh != 0:
                continue
            e = (rho + ph - r * dil_h) // sh + top
            for k in range(K):
                for s in range(S):
                    if (sig + pw - s * dil_w) % sw != 0:
                        continue
                    offs[t] = k * Hd * Wd + e * Wd + (sig + pw - s * dil_w) // sw + left
                    rows[t] = e
                    for c in range(C):
                        wt[c, t] = w[k, c, r, s]
                    t += 1
    return offs, rows, tstart[: J + 1], grids[:J], wt


@cpu_kernel(parallel=False, inline=True)
def transpose_weights(w2, K, CRS):
    """(K, >= CRS) weight rows -> (CRS, KB*NR) columns, wT[crs, k] = w2[k, crs], zero for k >= K."""
    Kp = (K + NR - 1) // NR * NR
    wT = np.zeros((CRS, Kp), w2.dtype)
    for k in range(K):
        for c in range(CRS):
            wT[c, k] = w2[k, c]
    return wT
