"""Layouts of the convolution operands on the GPU: zero padding, the spread-out delta of a strided input
gradient, and weight matrices (plain or 180-degree flipped and channel-transposed)."""
from numba import cuda

from ._launch import kernel, launch
from .memory import zeros


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


@kernel("T[:,:,:,:], T[:,:,:,:], i8, i8")
def _pad(x, xp, ph, pw):
    N, C, H, W = x.shape
    for i in range(cuda.grid(1), N * C * H * W, cuda.gridsize(1)):  # grid-stride loop
        w = i % W
        h = (i // W) % H
        c = (i // (H * W)) % C
        n = i // (C * H * W)
        xp[n, c, h + ph, w + pw] = x[n, c, h, w]


def pad(x, ph, pw):
    if ph == 0 and pw == 0:
        return x
    N, C, H, W = x.shape
    xp = zeros((N, C, H + 2 * ph, W + 2 * pw), x.dtype)
    launch(_pad, x.size, x, xp, ph, pw)
    return xp


@kernel("T[:,:,:,:], T[:,:], b1")
def _weight_matrix(w, w2, flip):
    K, C, R, S = w.shape
    for i in range(cuda.grid(1), K * C * R * S, cuda.gridsize(1)):  # grid-stride loop
        s = i % S
        r = (i // S) % R
        c = (i // (R * S)) % C
        k = i // (C * R * S)
        if flip:  # row c of the flipped, channel-transposed kernel: (C, K, R, S)
            w2[c, (k * R + R - 1 - r) * S + S - 1 - s] = w[k, c, r, s]
        else:
            w2[k, (c * R + r) * S + s] = w[k, c, r, s]


def weight_matrix(w, flip=False):
    K, C, R, S = w.shape
    rows, inner = (C, K) if flip else (K, C)
    w2 = cuda.device_array((rows, inner * R * S), w.dtype)
    launch(_weight_matrix, w.size, w, w2, flip)
    return w2


def flipped(w):
    """(K, C, R, S) -> (C, K, R, S), both spatial axes reversed."""
    K, C, R, S = w.shape
    return weight_matrix(w, flip=True).reshape(C, K, R, S)
