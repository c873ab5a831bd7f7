"""Depthwise convolution (groups == C): each output channel k reads one input channel, k // m, where m = K / C
is the channel multiplier. A per-channel stencil, memory-bound.

Stride 1 (any dilation) runs on zero-bordered copies of one plane at a time, in a buffer per thread: each
tap of NT outputs of a row reads NT consecutive inputs, and their accumulators stay in registers for every tap
(``micro.outer`` with a one-row block): ``depthwise_unpacked`` for the forward and the input gradient (the full
correlation of the bordered delta with the flipped taps), and ``depthwise_weight_dot`` for the weight gradient
(dot products along the padded width). Strided passes sweep rows,
one tap at a time, with the valid range of each tap worked out once (``ranges.inside``).

Each prange iteration owns what it writes: a (n, k) output plane in the forward, a (n, c) input plane in the
input gradient (the m output channels that read it are summed there in order), a weight row in the weight
gradient. No checking here: shapes, dtypes and contiguity are the caller's contract.
"""
import numpy as np
from numba import prange

from ..config import cpu_kernel
from .blocks import NT, V
from .dot import dot1x4
from .intrinsics import store_lanes
from .micro import accumulators, outer
from .ranges import inside


@cpu_kernel(parallel=False, inline=True)
def _fill_planes(buf, x, n, c0, J, top, left, Hp, Wp):
    """buf[j] = plane (n, c0 + j) of x at (top, left) of an Hp x Wp plane, for j < J (the borders are left
    as they are: zero)."""
    H, W = x.shape[2], x.shape[3]
    for j in range(J):
        for h in range(H):
            src = x[n, c0 + j, h]
            d = np.uint64(j * Hp * Wp + (top + h) * Wp + left)
            for v in range(W):
                buf[d + np.uint64(v)] = src[v]


@cpu_kernel
def depthwise_unpacked(x, top, left, Hp, Wp, offs, wt, bias, y, J, D, bufs, relu):
    """y[n, o, p, q] = bias[o] + sum over the taps t of wt[o, t, 0] * plane[offs[t] + p*Wp + q], where
    ``plane`` holds the J input planes o*J // D .. + J - 1 of image n, each placed at (top, left) of an
    Hp x Wp zero plane. An output row is computed NT columns at a time (``micro.outer`` with a one-row block:
    the NT accumulators stay in registers for every tap) and stored with masked vector stores.

    The forward has J = 1, D = m (output plane o reads input plane o // m, taps (r, s)); the input gradient
    has J = m, D = 1 (input plane c gathers the m delta planes c*m + j, each with its flipped taps: offs[j*R*S
    + t] includes j*Hp*Wp). The items (output planes) are split into one range per row of ``bufs``, each
    with its own zero-filled buffer of at least J*Hp*Wp + NT values (NT of slack: a row's last block reads
    past its end), given by the caller (``plan.plane_buffers``: rows a multiple of V wide and aligned, so
    that the middle tap's loads do not split cache lines): the input is read once and never padded in
    memory."""
    N, O, P, Q = y.shape
    T = offs.size
    items = N * O
    parts = bufs.shape[0]
    for part in prange(parts):  # each part owns its buffer and its output planes
        buf = bufs[part]
        acc = accumulators(y.dtype)
        last = -1
        for it in range(part * items // parts, (part + 1) * items // parts):
            n = it // O
            o = it - n * O
            src = n * x.shape[1] + o * J // D
            if src != last:  # (the m outputs of one input plane share its copy)
                _fill_planes(buf, x, n, o * J // D, J, top, left, Hp, Wp)
                last = src
            a = wt[o]
            b = bias[o]
            for p in range(P):
                row = y[n, o, p]
                for q0 in range(0, Q, NT):
                    outer(a, buf, offs, p * Wp + q0, T, acc, 1, NT, NT)
                    cnt = min(NT, Q - q0)
                    for u in range(0, cnt, V):
                        store_lanes(acc, np.uint64(u), row, np.uint64(q0 + u), min(V, cnt - u), b, relu)
    return y


@cpu_kernel
def depthwise_weight_dot(x, top, left, Hp, Wp, offs, dy, dw, db, parts):
    """Stride-1 weight gradient: dw[k, 0, r, s] += sum_n dyw[n, k] . plane[offs[r*S + s]:][:L], where plane
    is input plane (n, k // m) at (top, left) of a zero Hp x Wp plane and dyw the delta laid on the padded
    width (zeros past column Q); db[k] += sum dy[n, k] when db has K entries. The output channels are split
    into ``parts`` ranges, one per thread, each with its own buffers; each channel sums the batch in order.
    (A junk column pairs a zero delta with an input: a non-finite input makes the result non-finite, and the
    caller then takes the exact kernel.)"""
    N, K, P, Q = dy.shape
    C = x.shape[1]
    m = K // C
    T = offs.size
    L = (P - 1) * Wp + Q
    bias = db.size > 0
    dwf = dw.reshape(K, T)
    parts = max(1, min(parts, K))
    z = np.zeros(1, dy.dtype)[0]
    for part in prange(parts):  # each part owns its buffers and its output channels
        plane = np.zeros(Hp * Wp, x.dtype)
        row = np.zeros(L, dy.dtype)  # the junk columns stay zero
        acc = np.zeros(T, np.float64)
        for k in range(part * K // parts, (part + 1) * K // parts):
            for t in range(T):
                acc[t] = 0.0
            sdb = 0.0
            for n in range(N):
                _fill_planes(plane, x, n, k // m, 1, top, left, Hp, Wp)
                v = z  # (sums in the delta's type vectorise; a float64 chain here cost most of the kernel)
                for p in range(P):
                    src = dy[n, k, p]
                    o = np.uint64(p * Wp)  # (unsigned: a signed index would keep the copy from vectorising)
                    for q in range(Q):
                        row[o + np.uint64(q)] = src[q]
                        v += src[q]
                sdb += v
                for t0 in range(0, T, 4):  # four taps per pass over the row: each row value loaded once
                    b0, b1 = plane[offs[t0]:], plane[offs[min(t0 + 1, T - 1)]:]
                    b2, b3 = plane[offs[min(t0 + 2, T - 1)]:], plane[offs[min(t0 + 3, T - 1)]:]
                    v = dot1x4(row, b0, b1, b2, b3, L, z)
                    for i in range(min(4, T - t0)):
                        acc[t0 + i] += v[i]
            for t in range(T):
                dwf[k, t] += acc[t]
            if bias:
                db[k] += sdb
    return dw


@cpu_kernel(parallel=False, inline=True)
def _add_taps(dst, src, wv, off, step, lo, hi):
    """dst[q] += wv * src[q*step + off] for lo <= q < hi (unsigned indices; step 1 spelt out)."""
    if step == 1:
        for q in range(lo, hi):
            dst[np.uint64(q)] += wv * src[np.uint64(q + off)]
    else:
        for q in range(lo, hi):
            dst[np.uint64(q)] += wv * src[np.uint64(q * step + off)]


@cpu_kernel(parallel=False, inline=True)
def _spread_taps(dst, src, wv, off, step, lo, hi):
    """dst[q*step + off] += wv * src[q] for lo <= q < hi: the transpose of ``_add_taps``."""
    if step == 1:
        for q in range(lo, hi):
            dst[np.uint64(q + off)] += wv * src[np.uint64(q)]
    else:
        for q in range(lo, hi):
            dst[np.uint64(q * step + off)] += wv * src[np.uint64(q)]


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
                        _spread_taps(row, src, w[k, 0, r, s], off, sw, lo, hi)
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
