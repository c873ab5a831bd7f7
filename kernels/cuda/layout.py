"""Layouts of the convolution operands on the GPU: zero padding, the spread-out delta of a strided input
gradient, and weight matrices (plain or 180-degree flipped and channel-transposed)."""
from numba import cuda

from ._launch import kernel, launch
from .memory import device_array, zeros


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


@kernel("T[:,:,:,:], T[:,:], b1, i8")
def _weight_matrix(w, w2, flip, groups):
    K, Cg, R, S = w.shape
    Kg = K // groups
    for i in range(cuda.grid(1), K * Cg * R * S, cuda.gridsize(1)):  # grid-stride loop
        s = i % S
        r = (i // S) % R
        c = (i // (R * S)) % Cg
        k = i // (Cg * R * S)
        if flip:  # row g*Cg + c of the flipped kernel, whose group g maps the K/groups deltas onto Cg inputs
            g = k // Kg
            w2[g * Cg + c, ((k - g * Kg) * R + R - 1 - r) * S + S - 1 - s] = w[k, c, r, s]
        else:
            w2[k, (c * R + r) * S + s] = w[k, c, r, s]


def weight_matrix(w, flip=False, groups=1):
    """(K, C/groups, R, S) -> (K, C/groups*R*S) rows; with ``flip`` the 180-degree flipped kernel of the
    input gradient instead, (C, K/groups*R*S) rows (with the same ``groups``)."""
    K, Cg, R, S = w.shape
    rows, inner = (Cg * groups, K // groups) if flip else (K, Cg)
    w2 = device_array((rows, inner * R * S), w.dtype)
    launch(_weight_matrix, w.size, w, w2, flip, groups)
    return w2


def flipped(w, groups=1):
    """(K, C/groups, R, S) -> (C, K/groups, R, S), both spatial axes reversed."""
    K, Cg, R, S = w.shape
    return weight_matrix(w, True, groups).reshape(Cg * groups, K // groups, R, S)


def pad_sides(x, top, bottom, left, right):
    """x zero-padded by different amounts on each side (a new array)."""
    N, C, H, W = x.shape
    xp = zeros((N, C, H + top + bottom, W + left + right), x.dtype)
    launch(_pad, x.size, x, xp, top, left)
    return xp
