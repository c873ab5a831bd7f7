"""The unpacked product behind every stride-1 pass: forward, the forward over stride phases, and each stride
phase of the input gradient.

Outputs are computed on the padded width, so that for a run of NR consecutive outputs t, tap (c, r, s) reads
the NR consecutive inputs xp_flat[n, c, t + r*dil_h*Wp + s*dil_w] straight from the input (an offset table,
``taps``): no packing, no im2col. The columns q >= Q of that wide grid are dropped in the epilogue
(``store_wide_run``), which goes out as masked vector stores.
"""
import numpy as np
from numba import prange

from ..config import cpu_kernel
from .blocks import MR, MS, MT, NR, NT, V
from .intrinsics import store_lanes
from .micro import accumulators, outer, outer_rows
from .taps import pack_weights


@cpu_kernel(parallel=False, inline=True)
def store_wide_run(acc, y, n, k0, kend, t0, count, Wp, Q, G, gn, bias, relu, z, mr, nr, oy, sy, ox, sx):
    """Epilogue of the unpacked products: bias[k0 + i] + acc[i*nr + j] (clamped at zero with relu) goes to
    y[n + g, k0 + i, oy + sy*m, ox + sx*q], k0 + i < kend, for the wide positions
    t0 + j = m*Wp + g*(Wp // G) + q, j < count: a wide row holds one output row of each of G images side by
    side (G = 1 but for the unfolded forward), and the columns q >= Q and the images g >= gn are dropped. The
    run is cut into its pieces of whole rows, so for sx = 1 each piece is contiguous and goes out as masked
    vector stores (``store_lanes``); the strided loop's indices are unsigned (a signed index would bring
    Numba's negative-index fix-up into every iteration)."""
    Wg = Wp // G
    m = t0 // Wp
    g = (t0 - m * Wp) // Wg
    q = t0 - m * Wp - g * Wg
    j = 0
    while j < count:
        seg = min(count - j, Wg - q)  # wide positions left in this row of this image
        cnt = min(seg, Q - q)  # of which real outputs
        for i in range(min(mr, kend - k0) if g < gn else 0):
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
def unpacked_product(xf, img, Hp, Wp, offs, rows, tstart, wt, bias, y, grids, opts):
    """The unpacked product behind every stride-1 pass (see the module docstring), for J problems that share
    one input: the forward is one problem, an input gradient has one per stride phase.

    xf holds N images of ``img`` values, each a stack of planes with Hp rows of Wp. Problem j has the taps
    tstart[j] <= t < tstart[j + 1] and the output grid (m, q), m < P, q < Q, with (P, Q, oy, ox) = grids[j];
    the grid is computed on the wide positions m*Wp + q: tap t of that position reads xf[n*img + m*Wp + q +
    offs[t]], whose input row is m + rows[t] (rows non-decreasing within a problem); wt (K, T) holds the taps'
    weights. Output (m, q) of channel k goes to y[n, k, oy + sy*m, ox + sx*q] (``store_wide_run``). With at
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
    ap = pack_weights(wt, K, T, mr)
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
                else:  # (a short tail: half the columns)
                    outer_rows(ap[kb, k0:k1], xf, offs[k0:k1], start, k1 - k0, acc, six, 2 * last <= NR)
                store_wide_run(acc, y, n, kb * mr, K, t0, last, Wp, Q, 1, 1, bias, relu, z, mr, nr, oy, sy, ox, sx)
    return y
