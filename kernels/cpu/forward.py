"""conv2d forward kernels.

- stride 1, short rows (``conv2d_forward_unfolded`` on ``_unfolded``): a few images at a time are copied into
  one block per kernel column, rows Q wide, so that every position computed is an output (the padded-width
  layout of the unpacked product computes S - 1 junk columns per row: 4 of 14 on LeNet's C2).
- stride 1 otherwise, and strided convolutions onto fewer output channels than half a block: the input
  is padded straight into its stride phases (``layout.pad_phases``; stride 1 has one phase, the padded input),
  and the convolution is a stride-1 product over the phase planes (``conv2d_forward_phased``, on
  ``product.unpacked_product``).
- strided otherwise (``conv2d_forward_broadcast``): the output channels are the vector and MR output
  positions are broadcast from the input in place.

No checking here: shapes, dtypes and contiguity are the caller's contract (the plan module chooses).
"""
import numpy as np
from numba import get_num_threads, prange

from ..config import cpu_kernel
from .blocks import MR, MS, MT, NR, V
from .intrinsics import copy_lanes, store_transposed
from .micro import accumulators, outer_acc, outer_rows
from .product import store_wide_run, unpacked_product
from .ranges import inside
from .taps import forward_taps, tap_offsets, transpose_weights


def conv2d_forward_phased(xs, w, bias, y, sh, sw, dil_h, dil_w, relu):
    """Strided forward as a stride-1 product over the phases from ``pad_phases``: input (p*sh + r*dil_h,
    q*sw + s*dil_w) lies in phase ((r*dil_h) % sh, (s*dil_w) % sw) at (p + (r*dil_h) // sh, q + (s*dil_w) // sw). No packing,
    no wasted arithmetic, and outputs stored as vectors; xs needs P + (R-1)*dil_h // sh rows and
    Q + (S-1)*dil_w // sw columns."""
    N, CF, Hs, Ws = xs.shape
    offs, rows, wt = forward_taps(w, Hs, Ws, sh, sw, dil_h, dil_w)
    return unpacked_product(xs.reshape(-1), CF * Hs * Ws, Hs, Ws, offs, rows, np.array([0, offs.size]), wt, bias, y,
                   np.array([[y.shape[2], y.shape[3], 0, 0]]), np.array([1, 1, int(relu), 0, 0]))


@cpu_kernel
def conv2d_forward_broadcast(xp, w2, bias, y, R, S, sh, sw, dil_h, dil_w, relu):
    """Forward for any stride and dilation, y = bias + w2 (K, >= C*R*S) @ patches of the pre-padded xp, with
    the roles turned round: NR output channels are the vector and MR output positions of one row are
    broadcast from the input in place (``outer_acc``), so strided taps need no packing. The epilogue adds the
    bias, clamps at zero if ``relu`` and stores each block transposed in registers (``store_transposed``:
    positions are contiguous in y); scalar stores would take 10-20% of the time. Work items are output rows
    (n, p), each owning its outputs."""
    N, C, Hp, Wp = xp.shape
    K = w2.shape[0]
    P, Q = y.shape[2], y.shape[3]
    CRS = C * R * S
    HW = Hp * Wp
    wT = transpose_weights(w2, K, CRS)
    Kp = wT.shape[1]
    KB = Kp // NR
    taps = tap_offsets(C, R, S, HW, Wp, dil_h, dil_w).astype(np.uint64)
    xf = xp.reshape(N * C * HW)
    wf = wT.reshape(CRS * Kp)
    yf = y.reshape(N * K * P * Q)
    uKp = np.uint64(Kp)
    bp = np.zeros(Kp, y.dtype)
    bp[:K] = bias
    for row in prange(N * P):  # each item owns output row (n, p) of every channel
        n = row // P
        p = row - n * P
        acc = accumulators(y.dtype)
        ao = np.empty(MR, np.uint64)
        base = n * C * HW + p * sh * Wp
        for q0 in range(0, Q, MR):
            nq = min(MR, Q - q0)
            for i in range(MR):  # positions past the row's end repeat its last one (not stored)
                ao[i] = base + (q0 + min(i, nq - 1)) * sw
            for kb in range(KB):
                k0 = kb * NR
                for t in range(MR * NR):
                    acc[t] = 0
                outer_acc(xf, ao, taps, wf, np.uint64(k0), uKp, CRS, acc)
                # bias and ReLU, then each vector of channels stored with its nq positions contiguous
                o = ((n * K + k0) * P + p) * Q + q0
                store_transposed(acc, 0, NR, yf, o, P * Q, nq, min(V, K - k0), bp, k0, relu)
                if K - k0 > V:
                    store_transposed(acc, V, NR, yf, o + V * P * Q, P * Q, nq, min(V, K - k0 - V), bp, k0 + V, relu)
    return y


@cpu_kernel
def _unfolded(x, w, bias, y, ph, pw, dil_h, dil_w, G, parts, relu, c0, k0):
    """Stride-1 forward on an unfolded copy of the input, for small images (see ``conv2d_forward_unfolded``):
    y[:, k0 + k] = bias[k0 + k] + the correlation of x[:, c0 : c0 + C] with w[k] for the K, C of w's shape
    (c0 = k0 = 0 for a whole convolution; a group's channels otherwise, read and written in place).

    A work item takes G images and lays them out as C*S blocks, one per (channel c, kernel column s), of Hp
    rows (the padded height) by G*Q: row i of block (c, s) holds, for each image g, its padded input row i at
    columns s*dil_w .. s*dil_w + Q - 1, that is, the inputs that kernel column s reads for the Q outputs of a row.
    Tap (c, r, s) of the G*Q outputs in output row m then reads row m + r*dil_h of block (c, s): a product on
    ``outer`` whose every position is an output (the padded-width layout of ``unpacked_product`` computes S - 1 junk
    columns per row, 4 in 14 on LeNet's C2), and the padding is written into the copy, so x is not padded.

    The rows are copied by ``copy_lanes`` (masked vector loads and stores: padding columns read nothing, and
    no row spills onto its neighbour). The panel is about C*S*Hp*G*Q values, per thread: the items are split
    into ``parts`` contiguous ranges (one per thread), each with its own panel, allocated once. (The caller
    passes the thread count: ``get_num_threads`` inside a kernel would keep it out of the on-disk cache.)
    """
    N, Cx, H, W = x.shape
    K, C, R, S = w.shape
    P, Q = y.shape[2], y.shape[3]
    Hp = H + 2 * ph
    GQ = G * Q
    BS = Hp * GQ  # one (c, s) block
    T = C * R * S
    CS = C * S
    # Taps in the order (c, s, r), or (r, c, s) where the padding rows are at least a quarter of the padded
    # height: then the taps of one kernel row are a contiguous range, and the rows that read only padding
    # for a whole run are skipped (LeNet C2's input gradient, 4 padding rows on each side of 10: a quarter
    # of its taps; 0.49 -> 0.33 ms). Elsewhere (c, s, r) is faster (LeNet C1, 2 rows of 32: 0.176 vs 0.138 ms).
    by_row = 8 * ph >= Hp
    tap = np.empty((C, R, S), np.int64)  # tap (c, r, s)'s place in that order, and where it reads the panel
    offs = np.empty(T, np.int64)
    for c in range(C):
        for r in range(R):
            for s in range(S):
                t = (r * C + c) * S + s if by_row else (c * S + s) * R + r
                tap[c, r, s] = t
                offs[t] = (c * S + s) * BS + r * dil_h * GQ
    six = MS < MR and MT < K <= MS  # the six-row block (LeNet C1's forward, C2's input gradient)
    mr = MS if six else MR
    KB = (K + mr - 1) // mr
    ap = np.zeros((KB, T, MR), w.dtype)  # ap[kb, t, i]: the weight of tap t for output channel kb*mr + i
    for k in range(K):
        kb = k // mr
        for c in range(C):
            for r in range(R):
                for s in range(S):
                    ap[kb, tap[c, r, s], k - kb * mr] = w[k, c, r, s]
    qlo = np.empty(S, np.int64)  # kernel column s reads x for the outputs qlo[s] <= q < qhi[s] (padding elsewhere)
    qhi = np.empty(S, np.int64)
    for s in range(S):
        qlo[s], qhi[s] = inside(s * dil_w - pw, 1, Q, W)
    L = P * GQ
    size = C * S * BS
    items = (N + G - 1) // G
    parts = min(items, parts)
    panels = np.empty((parts, size + NR), x.dtype)
    xf = x.reshape(N * Cx * H * W)
    z = np.zeros(1, y.dtype)[0]
    for part in prange(parts):  # each part owns its panel and the outputs of its images
        panel = panels[part]
        acc = accumulators(y.dtype)
        for i in range(size, size + NR):  # what the last run reads past the panel (for outputs it does not store)
            panel[i] = 0
        for b in range(CS):  # the padding rows of each block, zero for every item (the items write the others)
            for i in range(Hp):
                if i < ph or i >= ph + H:
                    for j in range(b * BS + i * GQ, b * BS + (i + 1) * GQ):
                        panel[j] = 0
        for it in range(part * items // parts, (part + 1) * items // parts):
            n0 = it * G
            gn = min(G, N - n0)  # the last item may have fewer images: the rest of its panel is zeros
            for g in range(G):
                for c in range(C):
                    for s in range(S):
                        d = (c * S + s) * BS + g * Q  # panel row i starts at d + i*GQ ...
                        src = (((n0 + g) * Cx + c0 + c) * H - ph) * W + s * dil_w - pw  # ... and reads x from src + i*W
                        lo, hi = qlo[s], qhi[s]
                        if g >= gn:  # no image here (the last item): zeros
                            lo, hi = 0, 0
                        for v in range(0, Q, V):
                            nv = min(V, Q - v)  # the lanes of this piece of the row
                            for i in range(ph, ph + H):  # the rows that are not padding (copy_lanes writes
                                # zeros in the padding columns, and reads nothing outside lo - v .. hi - v)
                                copy_lanes(xf, np.uint64(src + i * W + v), panel, np.uint64(d + i * GQ + v),
                                           lo - v, hi - v, nv)
            for t0 in range(0, L, NR):
                last = min(NR, L - t0)
                # the kernel rows rlo <= r < rhi whose taps read a row that is not padding for some output
                # row m0 .. m1 of the run (the others would add zeros: a wide zero border, as in an input
                # gradient's, is a quarter of LeNet C2's taps)
                m0, m1 = t0 // GQ, (t0 + last - 1) // GQ
                rlo = max(0, -((m1 - ph) // dil_h))
                rhi = max(rlo, min(R, -((m0 - ph - H) // dil_h)))
                a0, a1 = (rlo * CS, rhi * CS) if by_row else (0, T)
                for kb in range(KB):  # (a short tail: half the columns)
                    outer_rows(ap[kb, a0:a1], panel, offs[a0:a1], t0, a1 - a0, acc, six, 2 * last <= NR)
                    store_wide_run(acc, y, n0, k0 + kb * mr, k0 + K, t0, last, GQ, Q, G, gn, bias, relu, z, mr, NR,
                                   0, 1, 0, 1)
    return y


def unfolded_group(N, C, S, Hp, P, Q, itemsize, threads):
    """How many images ``_unfolded`` lays side by side (1, 2 or 4): the fewest that leave the least of the last
    run of NR positions (or NR/2, the half block) unused, with at least one item per thread and a panel of at
    most 256 KB. Measured: 7x7 inputs, 64 channels, 3x3 kernel: 0.74 / 0.67 / 0.65 ms with 1 / 2 / 4 images."""
    best, waste = 1, None
    for G in (1, 2, 4):
        if G > 1 and (C * S * Hp * G * Q * itemsize > 256 * 1024 or -(-N // G) < threads):
            break
        L = P * G * Q
        step = NR // 2 if L % NR and L % NR <= NR // 2 else NR
        w = (-(-L // step) * step - L) / L
        if waste is None or w < waste:
            best, waste = G, w
    return best


def conv2d_forward_unfolded(x, w, bias, y, ph, pw, dil_h, dil_w, relu, c0=0, k0=0):
    """Stride-1 forward of the unpadded x on ``_unfolded``, for inputs whose padded rows are short next to the
    kernel (``plan.use_unfolded_forward``); ``relu`` clamps at zero. With ``c0``, ``k0``: the group of w's
    channels that starts at input channel c0 and output channel k0 (bias holds every output channel)."""
    N, H = x.shape[0], x.shape[2]
    threads = get_num_threads()
    G = unfolded_group(N, w.shape[1], w.shape[3], H + 2 * ph, y.shape[2], y.shape[3], x.itemsize, threads)
    return _unfolded(x, w, bias, y, ph, pw, dil_h, dil_w, G, threads, relu, c0, k0)
