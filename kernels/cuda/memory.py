"""Allocation and layout helpers for the CUDA backend (not op twins): zero-filled arrays, padding, weight
matrices, elementwise product and in-place sum."""
import numpy as np
from numba import cuda

from ._launch import kernel, launch


@kernel("T[:]")
def _fill_zero(a):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):  # grid-stride loop
        a[i] = 0


def zeros(shape, dtype):
    a = cuda.device_array(shape, dtype)
    launch(_fill_zero, a.size, a.reshape(a.size))
    return a


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


@kernel("T[:], T[:], T[:]")
def _mul(a, b, out):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):  # grid-stride loop
        out[i] = a[i] * b[i]


def mul(a, b):
    out = cuda.device_array(a.shape, a.dtype)
    launch(_mul, a.size, a.reshape(a.size), b.reshape(b.size), out.reshape(out.size))
    return out


@kernel("T[:], T[:]")
def _add_into(dst, src):
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):  # grid-stride loop
        dst[i] += src[i]


def add_into(dst, src):
    launch(_add_into, dst.size, dst.reshape(dst.size), src.reshape(src.size))
    return dst


def contiguous(a):
    """A C-contiguous Numba device array for anything with __cuda_array_interface__ (strided views are
    copied through the host: correct, not fast)."""
    d = a if hasattr(a, "copy_to_host") else cuda.as_cuda_array(a)
    if d.is_c_contiguous():
        return d
    return cuda.to_device(np.ascontiguousarray(d.copy_to_host()))
