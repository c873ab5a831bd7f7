"""conv2d kernels: forward (cross-correlation), weight gradient, bias gradient and input gradient.

Every product runs on the outer-product micro-kernels of ``micro`` (an MR x NR block of outputs held in
registers for the whole reduction), reading its operands in place through offset tables wherever it can:

- forward, stride 1 (``conv2d_forward_direct`` on ``_direct``): outputs are computed on the padded width, so
  that for a run of NR consecutive outputs t, tap (r, c, s) reads the NR consecutive inputs
  xp_flat[n, c, t + r*dh*Wp + s*dw] straight from the input: no packing. The columns q >= Q of that wide grid
  are dropped in the epilogue. Where those are many (small images: 4 of 14 on LeNet's C2), the input is
  instead copied, a few images at a time, into one block per kernel column, rows Q wide, so that every
  position computed is an output (``conv2d_forward_unfolded`` on ``_unfolded``).
- forward, strided: with few input channels for the output channels (a stem layer), the input is padded
  straight into its stride phases (``pad_phases``), after which the convolution is a stride-1 product over
  the phase planes on the same ``_direct`` (``conv2d_forward_phased``); otherwise the output channels are the
  vector and MR output positions are broadcast from the input in place (``conv2d_forward``).
- input gradient (``conv2d_backward_input_phased``): each stride phase of dx is a stride-1 product of the
  zero-bordered delta with the kernel taps that reach it, on the same ``_direct``; no spread-out zeros.
- weight gradient (``conv2d_backward_weight``): output channels are the vector, the input is broadcast in
  place along each output row; few channels at stride 1 take the dot-product ``conv2d_backward_weight_direct``.
  Both can sum the bias gradient on the way.

No checking here: shapes, dtypes and contiguity are the caller's contract (fastconv.functional).
"""
import numpy as np
from numba import get_num_threads, prange

from ..config import cpu_kernel
from .gemm import dot3x5
from .micro import MR, MS, MT, NR, NT, V, accumulators, copy_lanes, outer, outer_acc, store_lanes
from .ranges import inside

KC = 256  # dW transposes about this many delta positions (whole output rows) at a time
DW_ITEMS = 16  # dW splits its positions into enough fixed groups to make about this many work items
GROUPS = 16  # ... but never more groups than this (each needs a partial-sum buffer)
PAD = 16  # weight matrices (K, C*R*S) have their rows padded to a multiple of this (the CUDA kernels' layout;
# the CPU kernels read only the first C*R*S columns)


def padded(n):
    return -(-n // PAD) * PAD


@cpu_kernel(parallel=False, inline=True)
def _pack_weights(w2, K, CRS, rows):
    """(K, >= CRS) weight rows -> (ceil(K/rows), CRS, rows) panels, ap[kb, crs, i] = w2[kb*rows + i, crs],
    zero for the rows past K."""
    KB = (K + rows - 1) // rows
    ap = np.zeros((KB, CRS, rows), w2.dtype)
    for k in range(K):
        kb = k // rows
        for c in range(CRS):
            ap[kb, c, k - kb * rows] = w2[k, c]
    return ap


@cpu_kernel(parallel=False, inline=True)
def _tap_offsets(C, R, S, plane, row, dh, dw):
    """offs[(c*R + r)*S + s] = c*plane + r*dh*row + s*dw: where tap (c, r, s) reads, relative to the top-left
    input of its output position, in a flattened (C, rows, row) image."""
    offs = np.empty(C * R * S, np.int64)
    i = 0
    for c in range(C):
        for r in range(R):
            for s in range(S):
                offs[i] = c * plane + r * dh * row + s * dw
                i += 1
    return offs


@cpu_kernel(parallel=False, inline=True)
def _store_wide_run(acc, y, n, k0, t0, count, Wp, Q, G, gn, bias, relu, z, mr, nr, oy, sy, ox, sx):
    """Epilogue of the unpacked products: bias + acc[i*nr + j] (clamped at zero with relu) goes to
    y[n + g, k0 + i, oy + sy*m, ox + sx*q] for the wide positions t0 + j = m*Wp + g*(Wp // G) + q, j < count:
    a wide row holds one output row of each of G images side by side (G = 1 but for the unfolded forward), and
    the columns q >= Q and the images g >= gn are dropped. The run is cut into its pieces of whole rows, so
    for sx = 1 each piece is contiguous and goes out as masked vector stores (``store_lanes``); the strided
    loop's indices are unsigned (a signed index would bring Numba's negative-index fix-up into every
    iteration)."""
    K = y.shape[1]
    Wg = Wp // G
    m = t0 // Wp
    g = (t0 - m * Wp) // Wg
    q = t0 - m * Wp - g * Wg
    j = 0
    while j < count:
        seg = min(count - j, Wg - q)  # wide positions left in this row of this image
        cnt = min(seg, Q - q)  # of which real outputs
        for i in range(min(mr, K - k0) if g < gn else 0):
            b = bias[k0 + i]
            row = y[n + g, k0 + i, oy + sy * m]
            a = np.uint64(i * nr + j)
            r = np.uint64(ox + sx * q)
            usx = np.uint64(sx)
            if sx == 1:  # masked vector stores: a piece is often shorter than a vector
                for u in range(0, cnt, V):
                    store_lanes(acc, a + np.uint64(u), row, r + np.uint64(u), min(V, cnt - u), b, relu)
            else:
                for u in range(cnt):
                    uu = np.uint64(u)
                    v = acc[a + uu] + b
                    if relu and v < 0:
                        v = z
                    row[r + uu * usx] = v
        j += seg
        q = 0
        g += 1
        if g == G:
            g = 0
            m += 1


@cpu_kernel
def _direct(xf, img, Hp, Wp, offs, rows, tstart, wt, bias, y, grids, opts):
    """The unpacked product behind every stride-1 pass (see the module docstring), for J problems that share
    one input: the forward is one problem, an input gradient has one per stride phase.

    xf holds N images of ``img`` values, each a stack of planes with Hp rows of Wp. Problem j has the taps
    tstart[j] <= t < tstart[j + 1] and the output grid (m, q), m < P, q < Q, with (P, Q, oy, ox) = grids[j];
    the grid is computed on the wide positions m*Wp + q: tap t of that position reads xf[n*img + m*Wp + q +
    offs[t]], whose input row is m + rows[t] (rows non-decreasing within a problem); wt (K, T) holds the taps'
    weights. Output (m, q) of channel k goes to y[n, k, oy + sy*m, ox + sx*q] (``_store_wide_run``). With at
    most MT output channels the thin MT x NT block is used, so a 1-4 channel input gradient does not waste
    most of a block, and with 5-6 the six-row block (LeNet's C2 dX).

    opts = (sy, sx, relu, zt, zb) comes as one int64 array, so that every caller compiles the same
    specialisation (constants passed one by one are typed as literals, and each caller would compile its own
    copy, seconds each). The caller may say that the first ``zt`` and last ``zb`` rows of every plane lie
    outside the data (the border of a padded delta): a run then skips the taps that read only those rows for
    all of its outputs (terms that the sum leaves out). This saves about 30% of the input gradient of a small
    layer (LeNet's C2), whose padded delta has a wide zero border.

    Work items are (image, run index): an item computes that run of every problem, one after the other, while
    their inputs (the same rows of the same image) are in cache; it owns the outputs it stores. A run whose
    reads would pass the end of the batch (only the last image's last runs) is first copied into a zero-filled
    panel.
    """
    N, K = y.shape[0], y.shape[1]
    sy, sx, relu, zt, zb = opts[0], opts[1], opts[2] != 0, opts[3], opts[4]
    J = tstart.size - 1
    T = offs.size
    thin = K <= MT
    six = MS < MR and MT < K <= MS  # the six-row block
    mr = MT if thin else (MS if six else MR)
    nr = NT if thin else NR
    ap = _pack_weights(wt, K, T, mr)
    KB = ap.shape[0]
    seq = np.empty(T, np.int64)  # the rows of a copied panel (a loop: an array expression would be compiled
    for t in range(T):  # as a function of its own, with a warning that it has nothing to run in parallel)
        seq[t] = t * nr
    total = N * img
    reach = np.empty(J, np.int64)  # a run of problem j starting at flat index b reads below b + reach[j]
    runs = 0
    top = 0
    for jp in range(J):
        reach[jp] = offs[tstart[jp] : tstart[jp + 1]].max() + nr
        runs = max(runs, ((grids[jp, 0] - 1) * Wp + grids[jp, 1] + nr - 1) // nr)
        top = max(top, rows[tstart[jp + 1] - 1] + 1)
    first = np.empty((J, top + 1), np.int64)  # first[j, h]: problem j's first tap whose row offset is >= h
    for jp in range(J):
        t = tstart[jp]
        for h in range(top + 1):
            while t < tstart[jp + 1] and rows[t] < h:
                t += 1
            first[jp, h] = t
    z = np.zeros(1, y.dtype)[0]
    for it in prange(N * runs):  # each item owns the outputs of its runs, for every output channel
        n = it // runs
        t0 = (it - n * runs) * nr
        start = n * img + t0
        acc = accumulators(y.dtype)
        for jp in range(J):
            P, Q, oy, ox = grids[jp, 0], grids[jp, 1], grids[jp, 2], grids[jp, 3]
            L = (P - 1) * Wp + Q  # the wide positions that hold outputs
            if t0 >= L:
                continue
            last = min(nr, L - t0)
            # the taps whose input rows are all zero border for every output row m0..m1 of the run
            m0 = t0 // Wp
            m1 = (t0 + last - 1) // Wp
            k0 = first[jp, min(top, max(0, zt - m1))]  # first tap with m1 + rows >= zt
            k1 = max(k0, first[jp, min(top, max(0, Hp - zb - m0))])  # taps with m0 + rows < Hp - zb
            edge = start + reach[jp] > total
            if edge:  # read through a zero-padded copy of the run's inputs
                k0, k1 = tstart[jp], tstart[jp + 1]
                panel = np.zeros((k1 - k0) * nr, xf.dtype)
                for k in range(k0, k1):
                    d, o = np.uint64((k - k0) * nr), np.uint64(start + offs[k])
                    for j in range(min(nr, total - start - offs[k])):  # (unsigned: the copy vectorises)
                        panel[d + np.uint64(j)] = xf[o + np.uint64(j)]
            for kb in range(KB):
                if edge and thin:  # (one call per source array and block: LLVM then keeps acc in registers)
                    outer(ap[kb, k0:k1], panel, seq, 0, k1 - k0, acc, MT, NT, NT)
                elif edge and six:
                    outer(ap[kb, k0:k1], panel, seq, 0, k1 - k0, acc, MS, NR, NR)
                elif edge:
                    outer(ap[kb, k0:k1], panel, seq, 0, k1 - k0, acc, MR, NR, NR)
                elif thin:
                    outer(ap[kb, k0:k1], xf, offs[k0:k1], start, k1 - k0, acc, MT, NT, NT)
                elif six and 2 * last <= NR:
                    outer(ap[kb, k0:k1], xf, offs[k0:k1], start, k1 - k0, acc, MS, NR // 2, NR)
                elif six:
                    outer(ap[kb, k0:k1], xf, offs[k0:k1], start, k1 - k0, acc, MS, NR, NR)
                elif 2 * last <= NR:  # a short tail: half the columns
                    outer(ap[kb, k0:k1], xf, offs[k0:k1], start, k1 - k0, acc, MR, NR // 2, NR)
                else:
                    outer(ap[kb, k0:k1], xf, offs[k0:k1], start, k1 - k0, acc, MR, NR, NR)
                _store_wide_run(acc, y, n, kb * mr, t0, last, Wp, Q, 1, 1, bias, relu, z, mr, nr, oy, sy, ox, sx)
    return y


@cpu_kernel(parallel=False)
def _forward_taps(w, Hs, Ws, sh, sw, dh, dw):
    """The taps of a forward over the stride phases of its input (planes of Hs x Ws, ``pad_phases``; stride 1
    has one phase, the padded input itself), in the order (r, c, s), so the rows they read do not decrease:
    tap (r, c, s) reads phase plane (c, (r*dh) % sh, (s*dw) % sw) at row (r*dh) // sh and column (s*dw) // sw
    from its output's position. Returns (offs, rows, weights (K, T))."""
    K, C, R, S = w.shape
    T = C * R * S
    wt = np.empty((K, T), w.dtype)
    offs = np.empty(T, np.int64)
    rows = np.empty(T, np.int64)
    for r in range(R):
        for c in range(C):
            for s in range(S):
                t = (r * C + c) * S + s
                plane = (c * sh + (r * dh) % sh) * sw + (s * dw) % sw
                offs[t] = plane * Hs * Ws + (r * dh) // sh * Ws + (s * dw) // sw
                rows[t] = (r * dh) // sh
                for k in range(K):
                    wt[k, t] = w[k, c, r, s]
    return offs, rows, wt


def conv2d_forward_direct(xp, w, bias, y, dh, dw, relu):
    """Stride-1 forward without packing: ``_direct`` on the padded input; ``relu`` clamps at zero.

    (The jitted functions that build tap tables are called from Python, and so is ``_direct``: a jitted caller
    would make Numba generate ``_direct``'s machine code again inside every caller, seconds of first-call
    time each.) Stride 1 has a single phase, the padded input itself: ``conv2d_forward_phased`` with stride 1."""
    return conv2d_forward_phased(xp, w, bias, y, 1, 1, dh, dw, relu)


@cpu_kernel
def _unfolded(x, w, bias, y, ph, pw, dh, dw, G, parts, relu):
    """Stride-1 forward on an unfolded copy of the input, for small images (see ``conv2d_forward_unfolded``).

    A work item takes G images and lays them out as C*S blocks, one per (channel c, kernel column s), of Hp
    rows (the padded height) by G*Q: row i of block (c, s) holds, for each image g, its padded input row i at
    columns s*dw .. s*dw + Q - 1, that is, the inputs that kernel column s reads for the Q outputs of a row.
    Tap (c, r, s) of the G*Q outputs in output row m then reads row m + r*dh of block (c, s): a product on
    ``outer`` whose every position is an output (the padded-width layout of ``_direct`` computes S - 1 junk
    columns per row, 4 in 14 on LeNet's C2), and the padding is written into the copy, so x is not padded.

    The rows are copied by ``copy_lanes`` (masked vector loads and stores: padding columns read nothing, and
    no row spills onto its neighbour). The panel is about C*S*Hp*G*Q values, per thread: the items are split
    into ``parts`` contiguous ranges (one per thread), each with its own panel, allocated once. (The caller
    passes the thread count: ``get_num_threads`` inside a kernel would keep it out of the on-disk cache.)
    """
    N, C, H, W = x.shape
    K, R, S = w.shape[0], w.shape[2], w.shape[3]
    P, Q = y.shape[2], y.shape[3]
    Hp = H + 2 * ph
    GQ = G * Q
    BS = Hp * GQ  # one (c, s) block
    T = C * R * S
    offs = np.empty(T, np.int64)  # tap (c, s, r), in the panel's order
    for c in range(C):
        for s in range(S):
            for r in range(R):
                offs[(c * S + s) * R + r] = (c * S + s) * BS + r * dh * GQ
    KB = (K + MR - 1) // MR
    ap = np.zeros((KB, T, MR), w.dtype)  # ap[kb, t, i]: the weight of tap t for output channel kb*MR + i
    for k in range(K):
        kb = k // MR
        for c in range(C):
            for r in range(R):
                for s in range(S):
                    ap[kb, (c * S + s) * R + r, k - kb * MR] = w[k, c, r, s]
    qlo = np.empty(S, np.int64)  # kernel column s reads x for the outputs qlo[s] <= q < qhi[s] (padding elsewhere)
    qhi = np.empty(S, np.int64)
    for s in range(S):
        qlo[s], qhi[s] = inside(s * dw - pw, 1, Q, W)
    L = P * GQ
    size = C * S * BS
    items = (N + G - 1) // G
    parts = min(items, parts)
    panels = np.empty((parts, size + NR), x.dtype)
    panels[:, size:] = 0  # the last run's reads past the panel (for positions it does not store)
    xf = x.reshape(N * C * H * W)
    z = np.zeros(1, y.dtype)[0]
    for part in prange(parts):  # each part owns its panel and the outputs of its images
        panel = panels[part]
        acc = accumulators(y.dtype)
        for it in range(part * items // parts, (part + 1) * items // parts):
            n0 = it * G
            gn = min(G, N - n0)  # the last item may have fewer images: the rest of its panel is zeros
            for g in range(G):
                for c in range(C):
                    for s in range(S):
                        d = (c * S + s) * BS + g * Q  # panel row i starts at d + i*GQ ...
                        src = (((n0 + g) * C + c) * H - ph) * W + s * dw - pw  # ... and reads x from src + i*W
                        lo, hi = qlo[s], qhi[s]
                        i0, i1 = (ph, ph + H) if g < gn else (0, 0)  # the rows that are not padding
                        for v in range(0, Q, V):
                            for i in range(i0):
                                copy_lanes(xf, np.uint64(0), panel, np.uint64(d + i * GQ + v), 0, 0, Q - v)
                            for i in range(i0, i1):
                                copy_lanes(xf, np.uint64(src + i * W + v), panel, np.uint64(d + i * GQ + v),
                                           lo - v, hi - v, Q - v)
                            for i in range(i1, Hp):
                                copy_lanes(xf, np.uint64(0), panel, np.uint64(d + i * GQ + v), 0, 0, Q - v)
            for t0 in range(0, L, NR):
                last = min(NR, L - t0)
                for kb in range(KB):
                    if 2 * last <= NR:  # a short tail: half the columns
                        outer(ap[kb], panel, offs, t0, T, acc, MR, NR // 2, NR)
                    else:
                        outer(ap[kb], panel, offs, t0, T, acc, MR, NR, NR)
                    _store_wide_run(acc, y, n0, kb * MR, t0, last, GQ, Q, G, gn, bias, relu, z, MR, NR, 0, 1, 0, 1)
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


def conv2d_forward_unfolded(x, w, bias, y, ph, pw, dh, dw, relu):
    """Stride-1 forward of the unpadded x on ``_unfolded``, for inputs whose padded rows are short next to the
    kernel (``CPUBackend.use_unfolded_forward``); ``relu`` clamps at zero."""
    N, C, H, W = x.shape
    threads = get_num_threads()
    G = unfolded_group(N, C, w.shape[3], H + 2 * ph, y.shape[2], y.shape[3], x.itemsize, threads)
    return _unfolded(x, w, bias, y, ph, pw, dh, dw, G, threads, relu)


def _phase_margin(n, step, pad, k, dil, m_in):
    """For one axis of the input gradient: the zero border (lead, size) to lay the delta in. Output
    i = rho + step*m (phase rho) takes delta m + e from kernel tap t, e = (rho + pad - t*dil) / step where
    that divides; the delta must sit at ``lead`` in an axis of ``size`` so that every read m + e + lead of
    every phase lies in [0, size)."""
    lo, hi = 0, m_in
    for rho in range(min(step, n)):
        M = (n - rho + step - 1) // step
        for t in range(k):
            d = rho + pad - t * dil
            if d % step == 0:
                lo = min(lo, d // step)
                hi = max(hi, M + d // step)
    return -lo, hi - lo


@cpu_kernel(parallel=False)
def _input_grad_taps(w, H, W, sh, sw, dh, dw, ph, pw, top, left, Hd, Wd):
    """The taps of every stride phase of the input gradient (see ``conv2d_backward_input_phased``), phase
    after phase, each in an order whose rows do not decrease; the delta lies at (top, left) in planes of
    Hd x Wd. Returns (offs, rows, tstart, grids, weights (C, T)) for ``_direct``: phase j has the taps
    tstart[j] <= t < tstart[j + 1] and the output grid grids[j] = (P, Q, rho, sig). Phases that no tap reaches
    are left out."""
    K, C, R, S = w.shape
    grids = np.empty((sh * sw, 4), np.int64)
    tstart = np.zeros(sh * sw + 1, np.int64)
    J = 0
    for rho in range(min(sh, H)):
        for sig in range(min(sw, W)):
            nr = 0
            for r in range(R):
                if (rho + ph - r * dh) % sh == 0:
                    nr += 1
            ns = 0
            for s in range(S):
                if (sig + pw - s * dw) % sw == 0:
                    ns += 1
            if nr * ns > 0:
                grids[J] = ((H - rho + sh - 1) // sh, (W - sig + sw - 1) // sw, rho, sig)
                tstart[J + 1] = tstart[J] + nr * K * ns
                J += 1
    T = tstart[J]
    wt = np.empty((C, T), w.dtype)
    offs = np.empty(T, np.int64)
    rows = np.empty(T, np.int64)
    t = 0
    for jp in range(J):
        rho, sig = grids[jp, 2], grids[jp, 3]
        for r in range(R - 1, -1, -1):  # rows read rise as r falls
            if (rho + ph - r * dh) % sh != 0:
                continue
            e = (rho + ph - r * dh) // sh + top
            for k in range(K):
                for s in range(S):
                    if (sig + pw - s * dw) % sw != 0:
                        continue
                    offs[t] = k * Hd * Wd + e * Wd + (sig + pw - s * dw) // sw + left
                    rows[t] = e
                    for c in range(C):
                        wt[c, t] = w[k, c, r, s]
                    t += 1
    return offs, rows, tstart[: J + 1], grids[:J], wt


def conv2d_backward_input_phased(dy, w, dx, sh, sw, dh, dw, ph, pw):
    """dx (N, C, H, W), uninitialised, = the input gradient, one stride phase of dx at a time:
    dx[n, c, rho + sh*m, sig + sw*q] = sum over the taps (k, r, s) with rho + ph - r*dh = sh*e and
    sig + pw - s*dw = sw*f of w[k, c, r, s] * dy[n, k, m + e, q + f]: a stride-1 correlation of the delta (laid
    into a zero border sized by ``_phase_margin``) with that phase's taps. For stride 1 this is the full correlation with the
    flipped kernel; for larger strides it multiplies no spread-out zeros. The phases are the problems of one
    ``_direct`` call, which writes every input of every phase that a tap reaches; the others are zeroed."""
    N, K, P, Q = dy.shape
    C, R, S = w.shape[1], w.shape[2], w.shape[3]
    H, W = dx.shape[2], dx.shape[3]
    top, Hd = _phase_margin(H, sh, ph, R, dh, P)
    left, Wd = _phase_margin(W, sw, pw, S, dw, Q)
    offs, rows, tstart, grids, wt = _input_grad_taps(w, H, W, sh, sw, dh, dw, ph, pw, top, left, Hd, Wd)
    if len(grids) < min(sh, H) * min(sw, W):  # some phase gets no tap: its inputs have zero gradient
        dx[...] = 0
    if offs.size == 0:
        return dx
    dyp = pad_into(dy, np.empty((N, K, Hd, Wd), dy.dtype), top, left)
    return _direct(dyp.reshape(-1), K * Hd * Wd, Hd, Wd, offs, rows, tstart, wt, np.zeros(C, dx.dtype), dx, grids,
                   np.array([sh, sw, 0, top, Hd - top - P]))


@cpu_kernel
def pad_phases(x, xs, ph, pw, sh, sw):
    """Zero-pad x by (ph, pw) and split it into its stride phases: xs[n, (c*sh + a)*sw + b, i, j] =
    x[n, c, i*sh + a - ph, j*sw + b - pw], zero outside x. A strided convolution of x is then a stride-1
    product over the phase planes (``conv2d_forward_phased``)."""
    N, C, H, W = x.shape
    Hs, Ws = xs.shape[2], xs.shape[3]
    F = sh * sw
    xf = x.reshape(N * C * H * W)
    sf = xs.reshape(N * C * F * Hs * Ws)
    z = np.zeros(1, xs.dtype)[0]
    for nc in prange(N * C):  # one input plane, and its F phase planes, per iteration
        for a in range(sh):
            for b in range(sw):
                d = np.uint64((nc * F + a * sw + b) * Hs * Ws)
                jlo, jhi = inside(b - pw, sw, Ws, W)  # the j whose column j*sw + b - pw is inside x
                for i in range(Hs):
                    h = i * sh + a - ph
                    o = d + np.uint64(i * Ws)
                    if h < 0 or h >= H:
                        for j in range(Ws):
                            sf[o + np.uint64(j)] = z
                        continue
                    for j in range(jlo):
                        sf[o + np.uint64(j)] = z
                    s0 = np.uint64((nc * H + h) * W + jlo * sw + b - pw)
                    _take_every(xf, s0, sf, o + np.uint64(jlo), jhi - jlo, sw)
                    for j in range(jhi, Ws):
                        sf[o + np.uint64(j)] = z
    return xs


@cpu_kernel(parallel=False, inline=True)
def _take_every(src, s0, dst, d0, count, step):
    """dst[d0 + j] = src[s0 + j*step] for j < count (unsigned offsets; the common step 2 is spelt out, so
    LLVM sees a constant stride)."""
    if step == 2:
        for j in range(count):
            u = np.uint64(j)
            dst[d0 + u] = src[s0 + np.uint64(2) * u]
    else:
        us = np.uint64(step)
        for j in range(count):
            u = np.uint64(j)
            dst[d0 + u] = src[s0 + us * u]


def conv2d_forward_phased(xs, w, bias, y, sh, sw, dh, dw, relu):
    """Strided forward as a stride-1 product over the phases from ``pad_phases``: input (p*sh + r*dh,
    q*sw + s*dw) lies in phase ((r*dh) % sh, (s*dw) % sw) at (p + (r*dh) // sh, q + (s*dw) // sw). No packing,
    no wasted arithmetic, and outputs stored as vectors; xs needs P + (R-1)*dh // sh rows and
    Q + (S-1)*dw // sw columns."""
    N, CF, Hs, Ws = xs.shape
    offs, rows, wt = _forward_taps(w, Hs, Ws, sh, sw, dh, dw)
    return _direct(xs.reshape(-1), CF * Hs * Ws, Hs, Ws, offs, rows, np.array([0, offs.size]), wt, bias, y,
                   np.array([[y.shape[2], y.shape[3], 0, 0]]), np.array([1, 1, int(relu), 0, 0]))


@cpu_kernel(parallel=False, inline=True)
def _transpose_weights(w2, K, CRS):
    """(K, >= CRS) weight rows -> (CRS, KB*NR) columns, wT[crs, k] = w2[k, crs], zero for k >= K."""
    Kp = (K + NR - 1) // NR * NR
    wT = np.zeros((CRS, Kp), w2.dtype)
    for k in range(K):
        for c in range(CRS):
            wT[c, k] = w2[k, c]
    return wT


@cpu_kernel
def conv2d_forward(xp, w2, bias, y, R, S, sh, sw, dh, dw, relu):
    """Forward for any stride and dilation, y = bias + w2 (K, >= C*R*S) @ patches of the pre-padded xp, with
    the roles turned round: NR output channels are the vector and MR output positions of one row are
    broadcast from the input in place (``outer_acc``), so strided taps need no packing. ``relu`` clamps at
    zero in the epilogue, which stores each block transposed (positions are contiguous in y): that costs
    about a fifth of the time on a stem layer, and is why inputs with few channels take
    ``conv2d_forward_phased`` instead. Work items are output rows (n, p), each owning its outputs."""
    N, C, Hp, Wp = xp.shape
    K = w2.shape[0]
    P, Q = y.shape[2], y.shape[3]
    CRS = C * R * S
    HW = Hp * Wp
    wT = _transpose_weights(w2, K, CRS)
    Kp = wT.shape[1]
    KB = Kp // NR
    taps = _tap_offsets(C, R, S, HW, Wp, dh, dw).astype(np.uint64)
    xf = xp.reshape(N * C * HW)
    wf = wT.reshape(CRS * Kp)
    yf = y.reshape(N * K * P * Q)
    uKp = np.uint64(Kp)
    z = np.zeros(1, y.dtype)[0]
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
                for t in range(MR * NR):
                    acc[t] = 0
                outer_acc(xf, ao, taps, wf, np.uint64(kb * NR), uKp, CRS, acc)
                k0 = kb * NR
                for j in range(min(NR, K - k0)):
                    b = bias[k0 + j]
                    o = np.uint64(((n * K + k0 + j) * P + p) * Q + q0)  # unsigned: no wraparound fix-ups
                    for i in range(nq):
                        v = acc[i * NR + j] + b
                        if relu and v < 0:
                            v = z
                        yf[o + np.uint64(i)] = v
    return y


@cpu_kernel
def conv2d_backward_weight(xp, dy, dw2, R, S, sh, sw, dh, dw, db):
    """dw2 (K, C*R*S) += sum over every position (n, p, q) of dy[n, k, p, q] * patch[n, p, q, crs], any stride;
    and, when db has K entries (not 0), db += the bias gradient, summed while the delta is transposed.

    The positions of a chunk of output rows are one reduction of ``outer_acc``: MR patch entries broadcast
    from the input in place (tap crs of position (n, p, q) is xp_flat[n, c, p*sh + r*dh, q*sw + s*dw], found
    from a table of where each position's patch starts) times NR contiguous deltas, from a small transposed
    copy of the delta (dyT[position, k]). Only real terms are paired, so 0 * Inf never occurs.

    Work items are (group of output rows, block of NR channels): item (g, kb) transposes a few rows of its
    channels' delta at a time, then runs every block of MR taps over them (so the rows' inputs and deltas
    stay in cache), summing into its own partial block; the groups are added in order at the end. The
    grouping depends only on the shapes: the result is the same every run and for any thread count.
    """
    N, C, Hp, Wp = xp.shape
    K, P, Q = dy.shape[1], dy.shape[2], dy.shape[3]
    CRS = C * R * S
    HW = Hp * Wp
    KB = (K + NR - 1) // NR
    CB = (CRS + MR - 1) // MR
    offs = np.zeros(CB * MR, np.int64)  # taps past C*R*S read a real input but are never stored
    offs[:CRS] = _tap_offsets(C, R, S, HW, Wp, dh, dw)
    xf = xp.reshape(N * C * HW)
    rows = N * P
    G = max(1, min(GROUPS, (DW_ITEMS + KB - 1) // KB, rows))
    chunk = max(1, KC // Q)  # output rows per transposed chunk
    uNR = np.uint64(NR)
    partial = np.zeros((G, CB, KB, MR * NR), dw2.dtype)
    bias = db.size > 0
    dbp = np.zeros((G, K), db.dtype)
    for item in prange(G * KB):  # item (g, kb) owns partial[g, :, kb] and dbp[g, kb*NR : kb*NR + NR]
        g = item // KB
        kb = item - g * KB
        k0 = kb * NR
        nk = min(NR, K - k0)
        acc = accumulators(dw2.dtype)
        ao = np.empty(MR, np.uint64)
        dyT = np.zeros(chunk * Q * NR, dy.dtype)  # channels past K stay zero
        steps = np.empty(chunk * Q, np.uint64)  # where each position of the chunk reads, from its first one
        for r0 in range(g * rows // G, (g + 1) * rows // G, chunk):
            r1 = min(r0 + chunk, (g + 1) * rows // G)
            n0 = r0 // P
            base = n0 * C * HW + (r0 - n0 * P) * sh * Wp  # the input of the chunk's first position
            for row in range(r0, r1):  # transpose this chunk's deltas: dyT[(row - r0)*Q + q, j]
                n = row // P
                p = row - n * P
                b = n * C * HW + p * sh * Wp - base
                for q in range(Q):
                    steps[(row - r0) * Q + q] = b + q * sw
                for j in range(nk):
                    src = dy[n, k0 + j, p]
                    for q in range(Q):
                        dyT[((row - r0) * Q + q) * NR + j] = src[q]
                    if bias:
                        sdb = dbp[g, k0 + j]
                        for q in range(Q):
                            sdb += src[q]
                        dbp[g, k0 + j] = sdb
            for cb in range(CB):
                blk = partial[g, cb, kb]
                for t in range(MR * NR):
                    acc[t] = blk[t]
                for i in range(MR):
                    ao[i] = base + offs[cb * MR + i]
                outer_acc(xf, ao, steps, dyT, np.uint64(0), uNR, (r1 - r0) * Q, acc)  # the whole chunk at once
                for t in range(MR * NR):
                    blk[t] = acc[t]
    for g in range(G):  # fixed order
        for k in range(K):
            kb = k // NR
            for i in range(CRS):
                cb = i // MR
                dw2[k, i] += partial[g, cb, kb, (i - cb * MR) * NR + k - kb * NR]
            if bias:
                db[k] += dbp[g, k]
    return dw2


@cpu_kernel
def conv2d_backward_weight_direct(xp, dy, dwt, dh, dw, db):
    """Stride-1 dW without packing. The delta of image n is laid on the padded width (zeros past column Q),
    dyw[k, p*Wp + q] = dy[n, k, p, q]; then every tap is one long contiguous dot product,
    dwt[k, c, r, s] += dyw[k, :] . xp_flat[n, c, r*dh*Wp + s*dw :][:L], three channels by five taps at a time
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
            offs[r * S + s] = r * dh * Wp + s * dw
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


@cpu_kernel
def pad_into(x, xp, top, left):
    """xp (N, C, >= H + top, >= W + left), uninitialised, = x placed at row ``top`` and column ``left`` of each
    plane, zeros everywhere else. Flat unsigned indices: the rows are short, so the per-row work must be
    small."""
    N, C, H, W = x.shape
    Hp, Wp = xp.shape[2], xp.shape[3]
    xf = x.reshape(N * C * H * W)
    pf = xp.reshape(N * C * Hp * Wp)
    z = np.zeros(1, xp.dtype)[0]
    for nc in prange(N * C):  # one (n, c) plane per iteration
        src = np.uint64(nc * H * W)
        dst = np.uint64(nc * Hp * Wp)
        for v in range(top * Wp + left):  # the top rows, and the left border of the first data row
            pf[dst + np.uint64(v)] = z
        for h in range(H):
            d = dst + np.uint64((top + h) * Wp + left)
            sh = src + np.uint64(h * W)
            for v in range(W):
                pf[d + np.uint64(v)] = xf[sh + np.uint64(v)]
            # the right border of this row and the left border of the next (or the bottom rows)
            e = d + np.uint64(W)
            gap = Wp - W if h < H - 1 else Wp - W - left + (Hp - top - H) * Wp
            for v in range(gap):
                pf[e + np.uint64(v)] = z
        if H == 0:
            for v in range(top * Wp + left, Hp * Wp):
                pf[dst + np.uint64(v)] = z
    return xp
