"""conv2d forward on the GPU: one thread per output element. ``conv2d_forward_broadcast`` reads the weights as
(K, C/groups*R*S) rows, any stride; ``conv2d_forward_direct`` reads them as (K, C/groups, R, S), stride 1, for
few output channels (no weight matrix to prepare). Output channel k of group g = k // (K/groups) reads the
input channels g*C/groups .. (g+1)*C/groups - 1."""
from numba import cuda

from ._launch import kernel, launch


@kernel("T[:,:,:,:], T[:,:], T[:], T[:,:,:,:], i8, i8, i8, i8, i8, i8, b1, i8")
def _forward(xp, w2, bias, y, R, S, sh, sw, dil_h, dil_w, relu, groups):
    N, K, P, Q = y.shape
    for i in range(cuda.grid(1), N * K * P * Q, cuda.gridsize(1)):  # grid-stride loop
        q = i % Q
        p = (i // Q) % P
        k = (i // (P * Q)) % K
        n = i // (K * P * Q)
        Cg = xp.shape[1] // groups
        c0 = k // (K // groups) * Cg  # the group's first input channel
        acc = bias[k]
        for c in range(Cg):  # input channels of the group
            for r in range(R):  # kernel rows
                h = p * sh + r * dil_h
                for s in range(S):  # kernel columns
                    acc += w2[k, (c * R + r) * S + s] * xp[n, c0 + c, h, q * sw + s * dil_w]
        if relu and acc < 0:
            acc = 0
        y[n, k, p, q] = acc


def conv2d_forward_broadcast(xp, w2, bias, y, R, S, sh, sw, dil_h, dil_w, relu, groups):
    launch(_forward, y.size, xp, w2, bias, y, R, S, sh, sw, dil_h, dil_w, relu, groups)
    return y


@kernel("T[:,:,:,:], T[:,:,:,:], T[:], T[:,:,:,:], i8, i8, b1, i8")
def _forward_direct(xp, w, bias, y, dil_h, dil_w, relu, groups):
    N, K, P, Q = y.shape
    for i in range(cuda.grid(1), N * K * P * Q, cuda.gridsize(1)):  # grid-stride loop
        q = i % Q
        p = (i // Q) % P
        k = (i // (P * Q)) % K
        n = i // (K * P * Q)
        Cg, R, S = w.shape[1], w.shape[2], w.shape[3]
        c0 = k // (K // groups) * Cg
        acc = bias[k]
        for c in range(Cg):
            for r in range(R):
                for s in range(S):
                    acc += w[k, c, r, s] * xp[n, c0 + c, p + r * dil_h, q + s * dil_w]
        if relu and acc < 0:
            acc = 0
        y[n, k, p, q] = acc


def conv2d_forward_direct(xp, w, bias, y, dil_h, dil_w, relu, groups):
    launch(_forward_direct, y.size, xp, w, bias, y, dil_h, dil_w, relu, groups)
    return y
