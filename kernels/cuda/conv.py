"""conv2d on the GPU: one thread per output element (forward, dX through the forward kernel as on the CPU)
or per weight element (dW, which loops over the batch itself: no atomics, the same result every run).
Twins of kernels/cpu/conv.py: the same names and arguments; weight matrices are (K, C*R*S) rows, any padding
beyond C*R*S ignored."""
from numba import cuda

from ._launch import kernel, launch


@kernel("T[:,:,:,:], T[:,:], T[:], T[:,:,:,:], i8, i8, i8, i8, i8, i8, b1")
def _forward(xp, w2, bias, y, R, S, sh, sw, dh, dw, relu):
    N, K, P, Q = y.shape
    for i in range(cuda.grid(1), N * K * P * Q, cuda.gridsize(1)):  # grid-stride loop
        q = i % Q
        p = (i // Q) % P
        k = (i // (P * Q)) % K
        n = i // (K * P * Q)
        C = xp.shape[1]
        acc = bias[k]
        for c in range(C):  # input channels
            for r in range(R):  # kernel rows
                h = p * sh + r * dh
                for s in range(S):  # kernel columns
                    acc += w2[k, (c * R + r) * S + s] * xp[n, c, h, q * sw + s * dw]
        if relu and acc < 0:
            acc = 0
        y[n, k, p, q] = acc


def conv2d_forward(xp, w2, bias, y, R, S, sh, sw, dh, dw, relu):
    launch(_forward, y.size, xp, w2, bias, y, R, S, sh, sw, dh, dw, relu)
    return y


@kernel("T[:,:,:,:], T[:,:,:,:], T[:], T[:,:,:,:], i8, i8, b1")
def _forward_direct(xp, w, bias, y, dh, dw, relu):
    N, K, P, Q = y.shape
    for i in range(cuda.grid(1), N * K * P * Q, cuda.gridsize(1)):  # grid-stride loop
        q = i % Q
        p = (i // Q) % P
        k = (i // (P * Q)) % K
        n = i // (K * P * Q)
        C, R, S = w.shape[1], w.shape[2], w.shape[3]
        acc = bias[k]
        for c in range(C):
            for r in range(R):
                for s in range(S):
                    acc += w[k, c, r, s] * xp[n, c, p + r * dh, q + s * dw]
        if relu and acc < 0:
            acc = 0
        y[n, k, p, q] = acc


def conv2d_forward_direct(xp, w, bias, y, dh, dw, relu):
    launch(_forward_direct, y.size, xp, w, bias, y, dh, dw, relu)
    return y


@kernel("T[:,:,:,:], T[:,:,:,:], T[:,:], i8, i8, i8, i8, i8, i8")
def _backward_weight(xp, dy, dw2, R, S, sh, sw, dh, dw):
    K = dw2.shape[0]
    C = xp.shape[1]
    CRS = C * R * S
    for i in range(cuda.grid(1), K * CRS, cuda.gridsize(1)):  # grid-stride loop
        k = i // CRS
        crs = i % CRS
        c = crs // (R * S)
        r = (crs // S) % R
        s = crs % S
        N, _, P, Q = dy.shape
        acc = dw2[k, crs]  # arrives zeroed
        for n in range(N):  # the whole batch in this thread: no atomics
            for p in range(P):
                for q in range(Q):
                    acc += dy[n, k, p, q] * xp[n, c, p * sh + r * dh, q * sw + s * dw]
        dw2[k, crs] = acc


def conv2d_backward_weight(xp, dy, dw2, R, S, sh, sw, dh, dw, db):
    """dw2 += the weight gradient; db += the bias gradient when it has K entries (its own kernel here)."""
    launch(_backward_weight, dw2.size, xp, dy, dw2, R, S, sh, sw, dh, dw)
    if db.size:
        conv2d_backward_bias(dy, db)
    return dw2


def conv2d_backward_weight_direct(xp, dy, dwt, dh, dw, db):
    """Stride 1, weight as (K, C, R, S): the same per-element kernel (it pairs only real terms)."""
    K, C, R, S = dwt.shape
    conv2d_backward_weight(xp, dy, dwt.reshape(K, C * R * S), R, S, 1, 1, dh, dw, db)
    return dwt


@kernel("T[:,:,:,:], T[:]")
def _backward_bias(dy, db):
    N, K, P, Q = dy.shape
    for k in range(cuda.grid(1), K, cuda.gridsize(1)):  # grid-stride loop
        acc = db[k]
        for n in range(N):
            for p in range(P):
                for q in range(Q):
                    acc += dy[n, k, p, q]
        db[k] = acc


def conv2d_backward_bias(dy, db):
    launch(_backward_bias, db.size, dy, db)
    return db


@kernel("T[:,:,:,:], T[:,:,:,:], i8, i8, i8, i8")
def _dilate_pad(dy, z, sh, sw, oh, ow):
    N, K, P, Q = dy.shape
    for i in range(cuda.grid(1), N * K * P * Q, cuda.gridsize(1)):  # grid-stride loop
        q = i % Q
        p = (i // Q) % P
        k = (i // (P * Q)) % K
        n = i // (K * P * Q)
        h = p * sh + oh
        w = q * sw + ow
        if 0 <= h < z.shape[2] and 0 <= w < z.shape[3]:
            z[n, k, h, w] = dy[n, k, p, q]


def dilate_pad(dy, z, sh, sw, oh, ow):
    launch(_dilate_pad, dy.size, dy, z, sh, sw, oh, ow)
    return z
