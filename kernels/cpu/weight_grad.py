"""conv2d weight and bias gradients: the input cross-correlated with the delta, summed over the batch.

- ``conv2d_backward_weight``, any stride: output channels are the vector, the input is broadcast in place
  along each output row.
- ``conv2d_backward_weight_dot``, stride 1 with few output channels: every tap is one long contiguous dot
  product on the padded width.

Both can sum the bias gradient while they read the delta. Partial sums are added in a fixed order: the result
is the same every run and for any thread count. No checking here: shapes and dtypes are the caller's contract.
"""
import numpy as np
from numba import prange

from ..config import cpu_kernel
from .blocks import MR, NR, V
from .dot import dot3x5
from .intrinsics import transpose_lanes
from .micro import accumulators, outer_acc, outer_acc_pairs
from .taps import tap_offsets

KC = 256  # dW transposes about this many delta positions (whole output rows) at a time
DW_ITEMS = 16  # dW splits its positions into enough fixed groups to make about this many work items
GROUPS = 16  # ... but never more groups than this (each needs a partial-sum buffer)


@cpu_kernel
def conv2d_backward_weight(xp, dy, dw2, R, S, sh, sw, dil_h, dil_w, db, c0, k0d):
    """dw2 (K, C*R*S) += sum over every position (n, p, q) of dy[n, k0d + k, p, q] * patch[n, p, q, crs], the
    patches read from input channels c0 .. c0 + C of xp (c0 = k0d = 0 but for a group of a grouped
    convolution, read in place), any stride; and, when db has K entries (not 0), db += the bias gradient,
    summed while the delta is transposed.

    The positions of a chunk of output rows are one reduction of ``outer_acc``: MR patch entries broadcast
    from the input in place (tap crs of position (n, p, q) is xp_flat[n, c, p*sh + r*dil_h, q*sw + s*dil_w], found
    from a table of where each position's patch starts) times NR contiguous deltas, from a small transposed
    copy of the delta (dyT[position, k]). Only real terms are paired, so 0 * Inf never occurs.

    With at most NR/2 output channels the blocks are NR/2 channels wide and run two positions at a time
    (``outer_acc_pairs``), so that half of every vector is not spent on channels that do not exist (a
    16-channel layer on AVX-512).

    Work items are (group of output rows, block of channels): item (g, kb) transposes a few rows of its
    channels' delta at a time, then runs every block of MR taps over them (so the rows' inputs and deltas
    stay in cache), summing into its own partial block; the groups are added in order at the end. The
    grouping depends only on the shapes: the result is the same every run and for any thread count.
    """
    N, Cx, Hp, Wp = xp.shape
    K, P, Q = dw2.shape[0], dy.shape[2], dy.shape[3]
    C = dw2.shape[1] // (R * S)
    CRS = C * R * S
    HW = Hp * Wp
    narrow = 2 * K <= NR  # MR x NR/2 blocks, two at a time (``outer_acc_pairs``): no empty lanes
    nr = NR // 2 if narrow else NR
    KB = (K + nr - 1) // nr
    CB = (CRS + MR - 1) // MR
    offs = np.zeros(CB * MR, np.int64)  # taps past C*R*S read a real input but are never stored
    offs[:CRS] = tap_offsets(C, R, S, HW, Wp, dil_h, dil_w)
    xf = xp.reshape(N * Cx * HW)
    Kd = dy.shape[1]
    dyf = dy.reshape(-1)
    rows = N * P
    G = max(1, min(GROUPS, (DW_ITEMS + KB - 1) // KB, rows))
    chunk = max(1, KC // Q)  # output rows per transposed chunk
    partial = np.zeros((G, CB, KB, MR * NR), dw2.dtype)
    bias = db.size > 0
    dbp = np.zeros((G, K), db.dtype)
    for item in prange(G * KB):  # item (g, kb) owns partial[g, :, kb] and dbp[g, kb*nr : kb*nr + nr]
        g = item // KB
        kb = item - g * KB
        k0 = kb * nr
        nk = min(nr, K - k0)
        acc = accumulators(dw2.dtype)
        ao = np.empty(MR, np.uint64)
        dyT = np.zeros(chunk * Q * nr, dy.dtype)  # channels past K stay zero
        steps = np.empty(chunk * Q, np.uint64)  # where each position of the chunk reads, from its first one
        for r0 in range(g * rows // G, (g + 1) * rows // G, chunk):
            r1 = min(r0 + chunk, (g + 1) * rows // G)
            n0 = r0 // P
            base = (n0 * Cx + c0) * HW + (r0 - n0 * P) * sh * Wp  # the input of the chunk's first position
            for row in range(r0, r1):  # transpose this chunk's deltas: dyT[(row - r0)*Q + q, j]
                n = row // P
                p = row - n * P
                b = (n * Cx + c0) * HW + p * sh * Wp - base
                for q in range(Q):
                    steps[(row - r0) * Q + q] = b + q * sw
                for j0 in range(0, nk, V):  # V channels x V positions at a time, transposed in registers
                    for q0 in range(0, Q, V):
                        transpose_lanes(dyf, (((n * Kd + k0d + k0 + j0) * P + p) * Q + q0), P * Q, dyT,
                                        ((row - r0) * Q + q0) * nr + j0, nr, min(V, nk - j0), min(V, Q - q0))
            if bias:  # the bias gradient: each channel's rows of one image are contiguous
                row = r0
                while row < r1:
                    n = row // P
                    p = row - n * P
                    seg = min(r1 - row, P - p)
                    for j in range(nk):
                        o = np.uint64(((n * Kd + k0d + k0 + j) * P + p) * Q)
                        sdb = dbp[g, k0 + j]
                        for t in range(seg * Q):
                            sdb += dyf[o + np.uint64(t)]
                        dbp[g, k0 + j] = sdb
                    row += seg
            for cb in range(CB):
                blk = partial[g, cb, kb]
                for t in range(MR * NR):
                    acc[t] = blk[t]
                for i in range(MR):
                    ao[i] = base + offs[cb * MR + i]
                if narrow:  # the whole chunk at once
                    outer_acc_pairs(xf, ao, steps, dyT, np.uint64(0), (r1 - r0) * Q, acc)
                else:
                    outer_acc(xf, ao, steps, dyT, np.uint64(0), np.uint64(NR), (r1 - r0) * Q, acc)
                for t in range(MR * NR):
                    blk[t] = acc[t]
    for blk in prange(CB * KB):  # each block of taps x channels owns its entries of dw2
        cb = blk // KB
        kb = blk - cb * KB
        i0, k0 = cb * MR, kb * nr
        ni, nk = min(MR, CRS - i0), min(nr, K - k0)
        tmp = np.empty(MR * NR, dw2.dtype)  # dw2's entries of the block, laid out as a partial block
        for i in range(ni):
            for j in range(nk):
                tmp[i * NR + j] = dw2[k0 + j, i0 + i]
        for g in range(G):  # fixed order: contiguous reads of each group's partial block
            src = partial[g, cb, kb]
            for i in range(ni):
                e = i * NR
                if narrow:
                    for j in range(nk):
                        tmp[e + j] += src[e + j] + src[e + j + nr]
                else:
                    for j in range(nk):
                        tmp[e + j] += src[e + j]
        for i in range(ni):
            for j in range(nk):
                dw2[k0 + j, i0 + i] = tmp[i * NR + j]
    if bias:
        for k in range(K):
            for g in range(G):
                db[k] += dbp[g, k]
    return dw2


@cpu_kernel
def conv2d_backward_weight_dot(xp, dy, dwt, dil_h, dil_w, db):
    """Stride-1 dW without packing. The delta of image n is laid on the padded width (zeros past column Q),
    dyw[k, p*Wp + q] = dy[n, k, p, q]; then every tap is one long contiguous dot product,
    dwt[k, c, r, s] += dyw[k, :] . xp_flat[n, c, r*dil_h*Wp + s*dil_w :][:L], three channels by five taps at a time
    (``dot3x5``; at the edges of K and of the taps a block repeats its last channel or tap and drops the
    copies). When db has K entries (not 0), db += the bias gradient, summed while the delta is laid out.

    The dot products run over whole vectors (dyw is zero past L). The batch is summed in GROUPS fixed groups, each in its own buffer, added in order:
    deterministic.
    """
    N, C, Hp, Wp = xp.shape
    K, R, S = dwt.shape[0], dwt.shape[2], dwt.shape[3]
    P, Q = dy.shape[2], dy.shape[3]
    L = (P - 1) * Wp + Q
    Lv = (L + V - 1) // V * V
    T = R * S
    HW = Hp * Wp
    xf = xp.reshape(N * C * HW)
    G = min(N, GROUPS)
    partial = np.zeros((G, K, C, T), dwt.dtype)
    bias = db.size > 0
    dbp = np.zeros((G, K), db.dtype)
    offs = np.empty(T, np.int64)
    for r in range(R):
        for s in range(S):
            offs[r * S + s] = r * dil_h * Wp + s * dil_w
    # the planes whose reads would pass the end of the batch (the last, or more if planes are short) are read
    # from a copy with room past its end
    reach = offs.max() + Lv
    pu = min(N * C, max(0, (N * C * HW - reach) // HW + 1))  # the first such plane
    ext = np.zeros((N * C - pu) * HW + reach, xp.dtype)
    ext[: (N * C - pu) * HW] = xf[pu * HW :]
    z = np.zeros(1, dwt.dtype)[0]
    for g in prange(G):  # group g owns partial[g] and dbp[g]
        dyw = np.zeros((K, Lv), dy.dtype)  # the junk columns and the tail stay zero
        bo = np.empty(5, np.uint64)
        for n in range(g * N // G, (g + 1) * N // G):
            for k in range(K):
                row = dyw[k]
                sdb = dbp[g, k]
                for p in range(P):
                    src = dy[n, k, p]
                    o = np.uint64(p * Wp)
                    for q in range(Q):
                        v = src[q]
                        row[o + np.uint64(q)] = v
                        sdb += v
                dbp[g, k] = sdb
            for c in range(C):
                for k0 in range(0, K, 3):
                    a0, a1, a2 = dyw[k0], dyw[min(k0 + 1, K - 1)], dyw[min(k0 + 2, K - 1)]
                    for t0 in range(0, T, 5):
                        for j in range(5):
                            bo[j] = offs[min(t0 + j, T - 1)]
                        if n * C + c >= pu:  # (a separate call: one source array per call)
                            for j in range(5):
                                bo[j] += (n * C + c - pu) * HW
                            v = dot3x5(a0, a1, a2, ext, bo, Lv, z)
                        else:
                            for j in range(5):
                                bo[j] += (n * C + c) * HW
                            v = dot3x5(a0, a1, a2, xf, bo, Lv, z)
                        for i in range(min(3, K - k0)):
                            for j in range(min(5, T - t0)):
                                partial[g, k0 + i, c, t0 + j] += v[5 * i + j]
    dwf = dwt.reshape(K, C, T)
    for g in range(G):  # fixed order
        for k in range(K):
            for c in range(C):
                for t in range(T):
                    dwf[k, c, t] += partial[g, k, c, t]
            if bias:
                db[k] += dbp[g, k]
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
