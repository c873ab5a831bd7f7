"""conv2d kernels: forward (cross-correlation), weight gradient, bias gradient, and the delta spreading that
turns the input gradient into a forward pass (full convolution with the 180-degree-flipped kernel).

Both products pack a tile of input patches into a small buffer whose rows are contiguous along the reduction
axis, then run the register-blocked micro-kernel of ``gemm``:

- forward: for a tile of TILE output positions, col[j, crs] = xp[n, c, p*sh + r*dh, q*sw + s*dw]; then
  y[n, k, pos] = bias[k] + W[k, :] . col[j, :] (reduction over C*R*S).
- dW: for a tile of positions, colT[crs, j] (the same patches, transposed) and dyT[k, j]; then
  dW[k, crs] += dyT[k, :] . colT[crs, :] (reduction over positions).

Reduction axes are zero-padded to a multiple of PAD so the vectorised loop never falls into a scalar tail.
No checking here: shapes, dtypes and contiguity are the caller's contract (fastconv.functional).
"""
import numpy as np
from numba import prange

from ..config import cpu_kernel
from .gemm import block_nt, dot, dot1x4, dot4x4

TILE = 64  # output positions per packed tile (forward)
TILE_W = 64  # positions per tile in dW: the length of its reductions
PAD = 16  # reduction axes are padded to a multiple of this (one zmm register of float32)
CHUNKS = 64  # forward work is dealt out in at most this many chunks (one scratch buffer each)
GROUPS = 8  # dW sums the batch in this many fixed groups, then adds the groups in order (deterministic)


def padded(n):
    return -(-n // PAD) * PAD


@cpu_kernel(parallel=False)
def _pack_rows(xp, n, pos0, npos, Q, R, S, sh, sw, dh, dw, col, transposed=False):
    """col[j, (c*R + r)*S + s] = xp[n, c, p*sh + r*dh, q*sw + s*dw] for positions pos0 + j = p*Q + q
    (col[(c*R + r)*S + s, j] when ``transposed``)."""
    C = xp.shape[1]
    for j in range(npos):
        p = (pos0 + j) // Q
        q = (pos0 + j) - p * Q
        i = 0
        for c in range(C):
            for r in range(R):
                row = xp[n, c, p * sh + r * dh]
                for s in range(S):
                    if transposed:
                        col[i, j] = row[q * sw + s * dw]
                    else:
                        col[j, i] = row[q * sw + s * dw]
                    i += 1


@cpu_kernel
def conv2d_forward(xp, w2, bias, y, R, S, sh, sw, dh, dw, relu):
    """y (N, K, P*Q) = bias + w2 (K, CRSp) @ patches of the pre-padded xp; w2 is zero beyond C*R*S.

    With ``relu`` the result is clamped at zero (fused epilogue).
    """
    N = xp.shape[0]
    K, CRSp = w2.shape
    P, Q = y.shape[2], y.shape[3]
    PQ = P * Q
    yf = y.reshape(N, K, PQ)
    tiles = (PQ + TILE - 1) // TILE
    work = N * tiles
    chunks = min(work, CHUNKS)
    z = np.zeros(1, y.dtype)[0]
    for ch in prange(chunks):  # each chunk owns the output tiles it packs
        col = np.zeros((TILE, CRSp), xp.dtype)  # columns past C*R*S stay zero
        out = np.empty((K, TILE), y.dtype)
        for it in range(ch * work // chunks, (ch + 1) * work // chunks):
            n = it // tiles
            pos0 = (it - n * tiles) * TILE
            npos = min(TILE, PQ - pos0)
            _pack_rows(xp, n, pos0, npos, Q, R, S, sh, sw, dh, dw, col)
            block_nt(w2, col[:npos], CRSp, out, z)
            for k in range(K):  # epilogue: bias, optional ReLU, store
                b = bias[k]
                for j in range(npos):
                    v = out[k, j] + b
                    if relu and v < 0:
                        v = z
                    yf[n, k, pos0 + j] = v
    return y


@cpu_kernel
def conv2d_forward_direct(xp, w, bias, y, dh, dw, relu):
    """Stride-1 forward without packing, for few output channels (where packing would cost more than the
    arithmetic): each (n, k) plane is accumulated on the padded width, so that every kernel tap (r, s) is one
    long contiguous axpy, acc[t] += w[k,c,r,s] * xp_flat[n, c, t + r*dh*Wp + s*dw]; the columns past Q are
    dropped at the end.
    """
    N, C, Hp, Wp = xp.shape
    K, R, S = w.shape[0], w.shape[2], w.shape[3]
    P, Q = y.shape[2], y.shape[3]
    L = (P - 1) * Wp + Q  # the wide positions that hold outputs
    xf = xp.reshape(N, C, Hp * Wp)
    z = np.zeros(1, y.dtype)[0]
    for nk in prange(N * K):  # one (n, k) output plane per iteration
        n = nk // K
        k = nk - n * K
        acc = np.empty(L, y.dtype)
        b = bias[k]
        for t in range(L):
            acc[t] = b
        for c in range(C):
            plane = xf[n, c]
            for r in range(R):
                for s in range(S):
                    wv = w[k, c, r, s]
                    off = r * dh * Wp + s * dw
                    src = plane[off : off + L]  # a slice, so the loop index needs no wraparound check
                    for t in range(L):  # contiguous in acc and in the input plane
                        acc[t] += wv * src[t]
        for p in range(P):
            for q in range(Q):
                v = acc[p * Wp + q]
                if relu and v < 0:
                    v = z
                y[n, k, p, q] = v
    return y


@cpu_kernel
def conv2d_backward_weight(xp, dy, dw2, R, S, sh, sw, dh, dw):
    """dw2 (K, C*R*S) = sum over n and positions of dy[n, k, pos] * patch[n, pos, crs].

    The batch is split into GROUPS fixed groups, each summed in its own buffer by one iteration, and the
    groups are added in order, so the result does not depend on the thread count and is the same every run.
    """
    N, C = xp.shape[0], xp.shape[1]
    K = dy.shape[1]
    P, Q = dy.shape[2], dy.shape[3]
    PQ = P * Q
    CRS = C * R * S
    G = min(N, GROUPS)
    partial = np.zeros((G, K, CRS), dw2.dtype)
    z = np.zeros(1, dw2.dtype)[0]
    tiles = (PQ + TILE_W - 1) // TILE_W
    for g in prange(G):  # group g owns partial[g]
        colT = np.zeros((CRS, TILE_W), xp.dtype)  # positions past the tile's end stay zero
        dyT = np.zeros((K, TILE_W), dy.dtype)
        acc = np.empty((K, CRS), dw2.dtype)
        for n in range(g * N // G, (g + 1) * N // G):
            for t in range(tiles):
                pos0 = t * TILE_W
                npos = min(TILE_W, PQ - pos0)
                _pack_rows(xp, n, pos0, npos, Q, R, S, sh, sw, dh, dw, colT, True)
                for j in range(npos):
                    for k in range(K):
                        dyT[k, j] = dy[n, k, (pos0 + j) // Q, (pos0 + j) % Q]
                for j in range(npos, TILE_W):  # a short last tile: clear what the previous tile left
                    for i in range(CRS):
                        colT[i, j] = z
                    for k in range(K):
                        dyT[k, j] = z
                block_nt(dyT, colT, TILE_W, acc, z)
                for k in range(K):
                    for i in range(CRS):
                        partial[g, k, i] += acc[k, i]
    for g in range(G):  # fixed order
        for k in range(K):
            for i in range(CRS):
                dw2[k, i] += partial[g, k, i]
    return dw2


@cpu_kernel
def conv2d_backward_weight_direct(xp, dy, dwt, dh, dw):
    """Stride-1 dW without packing. The delta of image n is laid on the padded width (zeros past column Q),
    dyw[k, p*Wp + q] = dy[n, k, p, q]; then every tap is one long contiguous dot product,
    dwt[k, c, r, s] += dyw[k, :] . xp_flat[n, c, r*dh*Wp + s*dw :][:L], four channels by four taps at a time.

    The batch is summed in GROUPS fixed groups, each in its own buffer, added in order: deterministic.
    """
    N, C, Hp, Wp = xp.shape
    K, R, S = dwt.shape[0], dwt.shape[2], dwt.shape[3]
    P, Q = dy.shape[2], dy.shape[3]
    L = (P - 1) * Wp + Q
    T = R * S
    T4, K4 = T - T % 4, K - K % 4
    xf = xp.reshape(N, C, Hp * Wp)
    G = min(N, GROUPS)
    partial = np.zeros((G, K, C, T), dwt.dtype)
    z = np.zeros(1, dwt.dtype)[0]
    offs = np.empty(T, np.int64)
    for r in range(R):
        for s in range(S):
            offs[r * S + s] = r * dh * Wp + s * dw
    for g in prange(G):  # group g owns partial[g]
        dyw = np.zeros((K, L), dy.dtype)  # the junk columns stay zero
        for n in range(g * N // G, (g + 1) * N // G):
            for k in range(K):
                for p in range(P):
                    for q in range(Q):
                        dyw[k, p * Wp + q] = dy[n, k, p, q]
            for c in range(C):
                pl = xf[n, c]
                for t in range(0, T4, 4):  # four taps at a time
                    b0 = pl[offs[t] : offs[t] + L]
                    b1 = pl[offs[t + 1] : offs[t + 1] + L]
                    b2 = pl[offs[t + 2] : offs[t + 2] + L]
                    b3 = pl[offs[t + 3] : offs[t + 3] + L]
                    for k in range(0, K4, 4):
                        v = dot4x4(dyw[k], dyw[k + 1], dyw[k + 2], dyw[k + 3], b0, b1, b2, b3, L, z)
                        for a in range(4):
                            for b in range(4):
                                partial[g, k + a, c, t + b] += v[4 * a + b]
                    for k in range(K4, K):
                        v0, v1, v2, v3 = dot1x4(dyw[k], b0, b1, b2, b3, L, z)
                        partial[g, k, c, t] += v0
                        partial[g, k, c, t + 1] += v1
                        partial[g, k, c, t + 2] += v2
                        partial[g, k, c, t + 3] += v3
                for t in range(T4, T):
                    bt = pl[offs[t] : offs[t] + L]
                    for k in range(K):
                        partial[g, k, c, t] += dot(dyw[k], bt, L, z)
    dwf = dwt.reshape(K, C, T)
    for g in range(G):  # fixed order
        for k in range(K):
            for c in range(C):
                for t in range(T):
                    dwf[k, c, t] += partial[g, k, c, t]
    return dwt


@cpu_kernel
def conv2d_backward_bias(dy, db):
    """db[k] = sum_{n,p,q} dy[n,k,p,q]; db arrives zeroed."""
    N, K, P, Q = dy.shape
    for k in prange(K):  # one bias entry per iteration
        acc = db[k]
        for n in range(N):
            for p in range(P):
                row = dy[n, k, p]
                for q in range(Q):
                    acc += row[q]
        db[k] = acc
    return db


@cpu_kernel
def dilate_pad(dy, z, sh, sw, oh, ow):
    """Spread the delta by the stride into zeroed z: z[n,k, p*sh+oh, q*sw+ow] = dy[n,k,p,q], where inside z.

    Rows and columns that fall outside z belong to the padding only and are dropped.
    """
    N, K, P, Q = dy.shape
    Hz, Wz = z.shape[2], z.shape[3]
    for nk in prange(N * K):  # one (n, k) plane per iteration
        n = nk // K
        k = nk - n * K
        for p in range(P):
            h = p * sh + oh
            if h < 0 or h >= Hz:
                continue
            for q in range(Q):
                wc = q * sw + ow
                if wc >= 0 and wc < Wz:
                    z[n, k, h, wc] = dy[n, k, p, q]
    return z
