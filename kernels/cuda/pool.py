"""Pooling on the GPU, twins of kernels/cpu/pool.py. Both backward passes give each input element to one
thread, which gathers from the windows that hold it, in window order: no atomics, and overlapping windows
accumulate in the same order every run (and as on the CPU). Average pooling multiplies by the host-computed
reciprocal divisors inv_h[p] * inv_w[q], as on the CPU, held on the device in the data's type."""
import math

import numpy as np
from numba import cuda

from ._launch import kernel, launch
from .memory import to_device


@kernel("T[:,:,:,:], T[:,:,:,:], i8[:,:,:,:], i8, i8, i8, i8, i8, i8, i8, i8, b1")
def _max_forward(x, y, idx, kh, kw, sh, sw, ph, pw, dil_h, dil_w, keep):
    N, C, P, Q = y.shape
    for i in range(cuda.grid(1), N * C * P * Q, cuda.gridsize(1)):  # grid-stride loop
        q = i % Q
        p = (i // Q) % P
        c = (i // (P * Q)) % C
        n = i // (C * P * Q)
        H, W = x.shape[2], x.shape[3]
        h0 = p * sh - ph
        w0 = q * sw - pw
        i0 = 0 if h0 >= 0 else (-h0 + dil_h - 1) // dil_h  # the first tap inside x
        j0 = 0 if w0 >= 0 else (-w0 + dil_w - 1) // dil_w
        best = x[n, c, h0 + i0 * dil_h, w0 + j0 * dil_w]
        bi = (h0 + i0 * dil_h) * W + w0 + j0 * dil_w
        for i in range(i0, kh):
            h = h0 + i * dil_h
            if h >= H:
                break
            for j in range(j0, kw):
                w = w0 + j * dil_w
                if w >= W:
                    break
                v = x[n, c, h, w]
                if v > best or math.isnan(v):
                    best = v
                    bi = h * W + w
        y[n, c, p, q] = best
        if keep:
            idx[n, c, p, q] = bi


def max_pool2d_forward(x, y, idx, kh, kw, sh, sw, ph, pw, dil_h, dil_w, keep):
    launch(_max_forward, y.size, x, y, idx, kh, kw, sh, sw, ph, pw, dil_h, dil_w, keep)
    return y


@kernel("T[:,:,:,:], i8[:,:,:,:], T[:,:,:]")
def _max_backward_planes(dy, idx, dx):
    N, C, P, Q = dy.shape
    for i in range(cuda.grid(1), N * C, cuda.gridsize(1)):  # grid-stride loop
        n = i // C
        c = i % C
        for j in range(dx.shape[2]):  # dx arrives uninitialised: this thread's plane is zeroed first
            dx[n, c, j] = 0
        for p in range(P):  # this plane's windows, in order
            for q in range(Q):
                dx[n, c, idx[n, c, p, q]] += dy[n, c, p, q]


@kernel("T[:,:,:,:], i8[:,:,:,:], T[:,:,:], i8, i8, i8, i8, i8, i8, i8, i8, i8")
def _max_backward(dy, idx, dx, W, kh, kw, sh, sw, ph, pw, dil_h, dil_w):
    N, C, P, Q = dy.shape
    HW = dx.shape[2]
    for i in range(cuda.grid(1), N * C * HW, cuda.gridsize(1)):  # grid-stride loop over dx
        hw = i % HW
        c = (i // HW) % C
        n = i // (C * HW)
        h = hw // W
        w = hw - h * W
        # the windows that hold (h, w): p*sh - ph <= h <= p*sh - ph + (kh-1)*dil_h; in order, as on the CPU
        p0 = max(0, -(((kh - 1) * dil_h - h - ph) // sh))
        q0 = max(0, -(((kw - 1) * dil_w - w - pw) // sw))
        dx[n, c, hw] = 0
        for p in range(p0, min(P, (h + ph) // sh + 1)):
            for q in range(q0, min(Q, (w + pw) // sw + 1)):
                if idx[n, c, p, q] == hw:
                    dx[n, c, hw] += dy[n, c, p, q]


def max_pool2d_backward(dy, idx, dx, window):
    """dx (N, C, H*W) = each dy entry added to its window's winner. With the pooling geometry ``window``
    (H, W, kh, kw, sh, sw, ph, pw, dil_h, dil_w) one thread per dx element gathers from the windows that
    hold it; without it (indices from elsewhere) one thread per (n, c) plane scatters its windows."""
    if window is None:
        launch(_max_backward_planes, dy.shape[0] * dy.shape[1], dy, idx, dx)
    else:
        launch(_max_backward, dx.size, dy, idx, dx, *window[1:])
    return dx


@kernel("T[:,:,:,:], T[:,:,:,:], i8, i8, i8, i8, i8, i8, T[:], T[:]")
def _avg_forward(x, y, kh, kw, sh, sw, ph, pw, inv_h, inv_w):
    N, C, P, Q = y.shape
    for i in range(cuda.grid(1), N * C * P * Q, cuda.gridsize(1)):  # grid-stride loop
        q = i % Q
        p = (i // Q) % P
        c = (i // (P * Q)) % C
        n = i // (C * P * Q)
        H, W = x.shape[2], x.shape[3]
        h0 = p * sh - ph
        w0 = q * sw - pw
        acc = inv_w[0] - inv_w[0]  # a zero of the data's type (the divisors are finite)
        for h in range(max(h0, 0), min(h0 + kh, H)):
            for w in range(max(w0, 0), min(w0 + kw, W)):
                acc += x[n, c, h, w]
        y[n, c, p, q] = acc * (inv_h[p] * inv_w[q])


_divisor_cache = {}


def _divisors(inv_h, inv_w, dtype):
    """The reciprocal divisors on the device in the data's type, copied once per pooling geometry."""
    key = (inv_h.tobytes(), inv_w.tobytes(), np.dtype(dtype).str)
    if key not in _divisor_cache:
        if len(_divisor_cache) > 256:
            _divisor_cache.clear()
        _divisor_cache[key] = (to_device(inv_h.astype(dtype)), to_device(inv_w.astype(dtype)))
    return _divisor_cache[key]


def avg_pool2d_forward(x, y, kh, kw, sh, sw, ph, pw, inv_h, inv_w):
    launch(_avg_forward, y.size, x, y, kh, kw, sh, sw, ph, pw, *_divisors(inv_h, inv_w, x.dtype))
    return y


@kernel("T[:,:,:,:], T[:,:,:,:], i8, i8, i8, i8, i8, i8, T[:], T[:]")
def _avg_backward(dy, dx, kh, kw, sh, sw, ph, pw, inv_h, inv_w):
    N, C, H, W = dx.shape
    for i in range(cuda.grid(1), N * C * H * W, cuda.gridsize(1)):  # grid-stride loop
        w = i % W
        h = (i // W) % H
        c = (i // (H * W)) % C
        n = i // (C * H * W)
        P, Q = dy.shape[2], dy.shape[3]
        acc = inv_w[0] - inv_w[0]  # a zero of the data's type; every input is written: dx arrives uninitialised
        # the windows that hold (h, w): p*sh - ph <= h < p*sh - ph + kh
        for p in range(max(0, -((kh - 1 - h - ph) // sh)), min(P, (h + ph) // sh + 1)):
            for q in range(max(0, -((kw - 1 - w - pw) // sw)), min(Q, (w + pw) // sw + 1)):
                acc += dy[n, c, p, q] * (inv_h[p] * inv_w[q])
        dx[n, c, h, w] = acc


def avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, inv_h, inv_w):
    launch(_avg_backward, dx.size, dy, dx, kh, kw, sh, sw, ph, pw, *_divisors(inv_h, inv_w, dx.dtype))
    return dx
