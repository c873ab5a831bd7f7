"""The CPU target's op-level entry points: which kernel runs for which shape, next to the block sizes it reads.

``fastconv.functional`` validates the arguments, allocates the outputs and calls one entry point here; the
entry point allocates its own workspaces and picks the kernel. The CUDA target's plan module has the same
names and arguments (a test checks both sets).
"""
import numpy as np
from numba import get_num_threads

from .. import ENTRY_POINTS
from . import buffers, wisdom
from .blocks import MT, NR, NT, V
from .depthwise import (
    depthwise_backward_input,
    depthwise_backward_weight,
    depthwise_forward,
    depthwise_unpacked,
    depthwise_weight_dot,
)
from .dense import linear_backward_input, linear_backward_weight, linear_forward
from .elementwise import (
    adam_update,
    add_forward,
    min_max,
    relu_backward,
    relu_forward,
    sgd_update,
    sigmoid_backward,
    sigmoid_forward,
    sum_rows,
    tanh_backward,
    tanh_forward,
)
from .forward import conv2d_forward_broadcast, conv2d_forward_phased, conv2d_forward_unfolded
from .input_grad import conv2d_backward_input_phased
from .layout import pad_into, pad_phases
from .loss import softmax_cross_entropy
from .norm import (
    batch_norm_apply,
    batch_norm_backward,
    batch_norm_backward_dx,
    batch_norm_backward_sums,
    batch_norm_stats,
    global_avg_pool_backward,
    global_avg_pool_forward,
)
from .pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_forward
from .pool import max_pool2d_backward as _max_pool_backward
from .weight_grad import conv2d_backward_bias, conv2d_backward_weight_dot
from .weight_grad import conv2d_backward_weight as _weight_grad_broadcast


name = "cpu"

__all__ = list(ENTRY_POINTS)


# --- arrays --------------------------------------------------------------------------------------------------

empty = buffers.empty  # (large arrays come from the buffer cache)
zeros = buffers.zeros
contiguous = np.ascontiguousarray
asarray = np.ascontiguousarray


def flat(a):
    return a.reshape(-1)


def mean(a):
    return float(np.mean(a))


def minmax(a):
    """(min, max) of a non-empty integer array (max-pooling indices), in one parallel pass."""
    lo, hi = min_max(flat(contiguous(a)), 2 * get_num_threads())
    return int(lo), int(hi)


def mul(a, b):
    return np.multiply(a, b, out=empty(np.broadcast_shapes(a.shape, b.shape), np.result_type(a, b)))


def add_into(dst, src):
    dst += src
    return dst


def add(a, b, relu=False):
    """a + b of one shape and dtype, clamped at zero with ``relu`` (a residual connection and its ReLU)."""
    a, b = contiguous(a), contiguous(b)
    return add_forward(flat(a), flat(b), flat(empty(a.shape, a.dtype)), relu).reshape(a.shape)


def pad_sides(x, top, bottom, left, right):
    """x zero-padded by different amounts on each side (a new contiguous array)."""
    N, C, H, W = x.shape
    return pad_into(contiguous(x), empty((N, C, H + top + bottom, W + left + right), x.dtype), top, left)


def max_pool2d_backward(dy, idx, dx, window):
    """dx (N, C, H*W) = each dy entry added to its window's winner, one (n, c) plane per iteration (the
    pooling geometry ``window`` is for the GPU's gather; a plane's windows are scattered in order here)."""
    return _max_pool_backward(dy, idx, dx)


def pad(x, ph, pw):
    """Zero-pad the two spatial axes of a contiguous NCHW array (no copy when there is no padding)."""
    if ph == 0 and pw == 0:
        return x
    return pad_sides(x, ph, ph, pw, pw)


# --- kernel choice -------------------------------------------------------------------------------------------

def use_phased_forward(K):
    """Whether a strided forward splits its input into stride phases (``conv2d_forward_phased``) rather than
    broadcasting positions against vectors of output channels (``conv2d_forward_broadcast``): for fewer output
    channels than half a micro-kernel block, whose vectors the broadcast kernel would leave mostly empty.
    Measured on a 2-core Intel Xeon (AVX-512), phased vs broadcast: 3 -> 8 channels, 3x3 stride 2 on 32x32,
    0.140 vs 0.154 ms; but 3 -> 16 0.195 vs 0.152, 3 -> 32 7x7 on 64x64 0.69 vs 0.55, 3 -> 64 7x7 on 112x112
    23.7 vs 17.7, 16 -> 32 3x3 on 32x32 1.08 vs 0.79; 3 -> 24 7x7 and 64 -> 128 3x3: equal."""
    return 2 * K < NR


def use_unfolded_forward(x_shape, w_shape, ph, pw, Q, itemsize, threads):
    """Whether a stride-1 forward copies its input into kernel-column shifts (``conv2d_forward_unfolded``)
    instead of reading the padded input in place (the one-phase ``conv2d_forward_phased``), which computes its
    outputs on the padded width and so S - 1 junk columns per row of W + 2*pw: when those are at least a
    twentieth of the row, with more output channels than the thin block holds, a copy of at most 512 KB per
    image (it stays in a core's L2), and at least an image per thread (the images are the unit of work).
    Measured on a Zen 5 (2 threads, medians of 15 interleaved rounds), in place vs unfolded: LeNet C2 (6 -> 16,
    14x14, 5x5) 0.51 vs 0.41 ms; ResNet-20's 16 -> 16 on 32x32 (a junk seventeenth) 2.10 vs 1.65 ms, 32 -> 32
    on 16x16 1.62 vs 1.41, 64 -> 64 on 8x8 1.67 vs 1.28; 32 -> 64 on 28x28 (a 322 KB copy) 3.98 vs 3.65; but
    64 -> 64 on 28x28 (645 KB) 6.30 vs 6.21 and 32 -> 32 on 56x56 (1.2 MB) 4.09 vs 4.27. The Zen 4's tuner
    made the same choices on ResNet-20's layers."""
    N, C, H, W = x_shape
    K, _, R, S = w_shape
    Wp = W + 2 * pw
    return (K > MT and 20 * (Wp - Q) >= Wp and C * S * (H + 2 * ph) * Q * itemsize <= 512 * 1024
            and N >= threads)


def weight_grad_path(K):
    """The built-in rule for which kernel a stride-1 dW runs: "dot" where fewer than half the lanes of the
    broadcast kernel's vectors over K would be used (under NR/4 channels: its narrow block is NR/2 wide), else
    "broadcast". A measured choice (``wisdom``) overrides it; "dot" runs only on finite inputs (``_finite``).
    Measured on a 2-core Intel Xeon (AVX-512, batch 64), broadcast vs dot: 1 -> 6 channels 5x5 on 32x32
    0.57 vs 0.47 ms, 16 -> 8 on 32x32 1.60 vs 1.62, 3 -> 16 0.66 vs 0.64, ResNet-20's 16 -> 16 on 32x32 1.70 vs
    2.62, LeNet C2 0.24 vs 2.53, a 64 -> 64 3x3 in 4 groups (batch 16, 28x28) 1.44 vs 2.64."""
    return "dot" if 4 * K < NR else "broadcast"


def _finite(xp):
    """The dot-product dW multiplies zero padding columns by real inputs (0 * Inf is NaN): finite inputs only."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(xp)))


def forward_path(x_shape, w_shape, stride, padding, out_w, itemsize):
    """The built-in rule for which kernel ``conv2d_forward`` runs for these shapes on this CPU, with this many
    threads: "unfolded", "phased" (which includes stride 1, a single phase) or "broadcast". A measured choice
    (``wisdom``) overrides it."""
    (sh, sw), (ph, pw) = stride, padding
    if (sh, sw) != (1, 1):
        return "phased" if use_phased_forward(w_shape[0]) else "broadcast"
    if use_unfolded_forward(x_shape, w_shape, ph, pw, out_w, itemsize, get_num_threads()):
        return "unfolded"
    return "phased"


# --- entry points --------------------------------------------------------------------------------------------

def _forward(x, w, b, y, stride, padding, dilation, relu, groups=1):
    """The forward of ``groups`` groups: the kernel is chosen for one group's shapes; the unfolded kernel reads
    and writes each group's channels in place, the others run on contiguous copies of them."""
    N, _, H, W = x.shape
    K, Cg = w.shape[0], w.shape[1]
    Kg = K // groups
    x, w = contiguous(x), contiguous(w)
    xg = (N, Cg, H, W)
    op = "forward" if tuple(stride) == (1, 1) else "forward_strided"
    path = wisdom.choose(op, forward_path(xg, (Kg,) + w.shape[1:], stride, padding, y.shape[3], x.itemsize),
                         (xg, (Kg,) + w.shape[1:], stride, padding, dilation, x.itemsize, get_num_threads()),
                         lambda: _forward(x, w, b, np.empty_like(y), stride, padding, dilation, relu, groups))
    if path == "unfolded":  # short rows: the input is copied into kernel-column shifts, no junk columns
        for g in range(groups):
            conv2d_forward_unfolded(x, w[g * Kg : (g + 1) * Kg], b, y, *padding, *dilation, relu, g * Cg, g * Kg)
        return y
    if groups == 1:
        return _run_forward(path, x, w, b, y, stride, padding, dilation, relu)
    for g in range(groups):
        part = empty((N, Kg, y.shape[2], y.shape[3]), y.dtype)
        _run_forward(path, _group(x, g, groups), w[g * Kg : (g + 1) * Kg], b[g * Kg : (g + 1) * Kg], part, stride,
                     padding, dilation, relu)
        _into_group(y, g, groups, part)
    return y


def _run_forward(path, x, w, b, y, stride, padding, dilation, relu):
    (sh, sw), (ph, pw), (dil_h, dil_w) = stride, padding, dilation
    N, C = x.shape[:2]
    K, _, R, S = w.shape
    P, Q = y.shape[2], y.shape[3]
    if path == "broadcast":
        return conv2d_forward_broadcast(pad(x, ph, pw), w.reshape(K, -1), b, y, R, S, sh, sw, dil_h, dil_w, relu)
    if (sh, sw) == (1, 1):  # one phase: the padded input itself
        return conv2d_forward_phased(pad(x, ph, pw), w, b, y, 1, 1, dil_h, dil_w, relu)
    # padded straight into its stride phases, which hold P + (R-1)*dil_h // sh rows and likewise columns
    xs = empty((N, C * sh * sw, P + (R - 1) * dil_h // sh, Q + (S - 1) * dil_w // sw), x.dtype)
    pad_phases(x, xs, ph, pw, sh, sw)
    return conv2d_forward_phased(xs, w, b, y, sh, sw, dil_h, dil_w, relu)


def input_grad_path(dy_shape, w_shape, padding, dilation, dx_w, itemsize, threads):
    """The built-in rule for a stride-1 dX: "unfolded" where the forward rule would unfold the equivalent
    forward (the delta correlated with the flipped kernel, its channels swapped, at padding dil*(R-1) - p),
    else "phased" (which skips the taps that read only the delta's zero border, and has the thin and six-row
    blocks). Measured on a Zen 5 (2 threads, medians of 15 interleaved rounds), phased vs unfolded: ResNet-20's
    16 -> 16 on 32x32 2.25 vs 1.59 ms, 32 -> 32 on 16x16 2.09 vs 1.35, 64 -> 64 on 8x8 1.85 vs 1.42; 32 -> 64
    on 28x28 4.80 vs 3.84 and 4.08 vs 3.69; 64 -> 64 on 56x56 (a 2.5 MB copy) 6.49 vs 5.93 and 6.72 vs 6.88;
    onto 3 channels (the thin block) 0.73 vs 0.98. LeNet C2, onto 6 channels, is the one measured loss, 0.50 vs
    0.57 and 0.63 vs 0.67 ms (40 rounds), kept on purpose: with it LeNet-5 compiles no padded-width product,
    and its first training step in a fresh process takes 21 s instead of 33 (``fastconv tune`` takes the
    phased kernel back where it measures faster)."""
    (ph, pw), (dil_h, dil_w) = padding, dilation
    K, C, R, S = w_shape
    eh, ew = dil_h * (R - 1) - ph, dil_w * (S - 1) - pw
    if eh < 0 or ew < 0:  # (a padding wider than the kernel: the phased kernel crops)
        return "phased"
    unfold = use_unfolded_forward(dy_shape, (C, K, R, S), eh, ew, dx_w, itemsize, threads)
    return "unfolded" if unfold else "phased"


def _input_grad(dy, w, dx, stride, padding, dilation, groups=1):
    """The input gradient of ``groups`` groups (the kernel chosen for one group's shapes): at stride 1 where
    the rule or the tuner says so, the unfolded forward of each group's delta with its flipped kernel, read
    and written in place; else one stride phase of dx at a time, on contiguous copies of each group."""
    (sh, sw), (ph, pw), (dil_h, dil_w) = stride, padding, dilation
    dy, w = contiguous(dy), contiguous(w)
    N, K, P, Q = dy.shape
    Kg, Cg, R, S = w.shape[0] // groups, w.shape[1], w.shape[2], w.shape[3]
    if (sh, sw) == (1, 1):
        threads = get_num_threads()
        dyg, wg = (N, Kg, P, Q), (Kg,) + w.shape[1:]
        path = wisdom.choose("input_grad", input_grad_path(dyg, wg, padding, dilation, dx.shape[3], dx.itemsize,
                                                           threads),
                             (dyg, wg, stride, padding, dilation, dx.itemsize, threads),
                             lambda: _input_grad(dy, w, np.empty_like(dx), stride, padding, dilation, groups))
        eh, ew = dil_h * (R - 1) - ph, dil_w * (S - 1) - pw
        if path == "unfolded" and eh >= 0 and ew >= 0:  # the forward of the delta with the flipped kernel
            zero = np.zeros(dx.shape[1], dx.dtype)
            for g in range(groups):
                wf = np.ascontiguousarray(w[g * Kg : (g + 1) * Kg, :, ::-1, ::-1].transpose(1, 0, 2, 3))
                conv2d_forward_unfolded(dy, wf, zero, dx, eh, ew, dil_h, dil_w, False, g * Kg, g * Cg)
            return dx
    if groups == 1:
        return conv2d_backward_input_phased(dy, w, dx, sh, sw, dil_h, dil_w, ph, pw)
    for g in range(groups):
        part = empty((N, Cg, dx.shape[2], dx.shape[3]), dx.dtype)
        conv2d_backward_input_phased(_group(dy, g, groups), w[g * Kg : (g + 1) * Kg], part, sh, sw, dil_h, dil_w,
                                     ph, pw)
        _into_group(dx, g, groups, part)
    return dx


def _weight_grad(dy, x, dw, db, stride, padding, dilation, groups=1):
    """dW of ``groups`` groups (the kernel chosen once, for one group's shapes): the broadcast kernel reads each
    group's channels of the padded input and of the delta in place; the dot-product kernel runs on
    contiguous copies of each group's (no copy for a single group)."""
    (sh, sw), (ph, pw), (dil_h, dil_w) = stride, padding, dilation
    K, Cg, R, S = dw.shape
    Kg = K // groups
    x, dy = contiguous(x), contiguous(dy)
    kernel = "broadcast"
    if (sh, sw) == (1, 1):
        xg, wg = (x.shape[0], Cg) + x.shape[2:], (Kg,) + dw.shape[1:]
        kernel = wisdom.choose("weight_grad", weight_grad_path(Kg),
                               (xg, wg, stride, padding, dilation, x.itemsize, get_num_threads()),
                               lambda: _weight_grad(dy, x, np.zeros_like(dw), np.zeros_like(db), stride, padding,
                                                    dilation, groups))
    xp = pad(x, ph, pw)
    dot = kernel == "dot" and _finite(xp)
    for g in range(groups):
        dwg = dw[g * Kg : (g + 1) * Kg]
        dbg = db[g * Kg : (g + 1) * Kg] if db.size else db
        if dot:
            conv2d_backward_weight_dot(_group(xp, g, groups), _group(dy, g, groups), dwg, dil_h, dil_w, dbg)
        else:
            _weight_grad_broadcast(xp, dy, dwg.reshape(Kg, Cg * R * S), R, S, sh, sw, dil_h, dil_w, dbg, g * Cg,
                                   g * Kg)
    return dw


def _depthwise_taps(R, S, Wp, dil_h, dil_w):
    """Where tap (r, s) reads from its output's position in a plane Wp wide: r*dil_h*Wp + s*dil_w."""
    return (np.arange(R)[:, None] * dil_h * Wp + np.arange(S)[None, :] * dil_w).reshape(-1).astype(np.int64)


def plane_buffers(parts, J, Hp, Wp, S, dil_w, dtype):
    """Zero-filled plane buffers for ``depthwise_unpacked``, one row per part, and the row width Wb >= Wp they
    use: a multiple of the vector width, each buffer placed so that the middle kernel column's reads
    (element ((S - 1) // 2) * dil_w of each row, and every NT columns on) start on a 64-byte line."""
    Wb = -(-Wp // V) * V
    size = -(-(J * Hp * Wb + NT) // V) * V
    item = np.dtype(dtype).itemsize
    raw = np.zeros(parts * size + 64 // item, dtype)  # (room for the shift below)
    lead = ((S - 1) // 2) * dil_w
    shift = (-(raw.ctypes.data // item + lead)) % (64 // item)
    return raw[shift : shift + parts * size].reshape(parts, size), Wb


def _depthwise_forward(x, w, b, y, stride, padding, dilation, relu):
    (sh, sw), (ph, pw), (dil_h, dil_w) = stride, padding, dilation
    x = contiguous(x)
    if (sh, sw) != (1, 1):
        return depthwise_forward(x, contiguous(w), b, y, sh, sw, ph, pw, dil_h, dil_w, relu)
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    Hp = H + 2 * ph
    bufs, Wb = plane_buffers(min(get_num_threads(), N * K), 1, Hp, W + 2 * pw, S, dil_w, x.dtype)
    wt = np.ascontiguousarray(w.reshape(K, R * S, 1))
    return depthwise_unpacked(x, ph, pw, Hp, Wb, _depthwise_taps(R, S, Wb, dil_h, dil_w), wt, b, y, 1, K // C,
                              bufs, relu)


def _depthwise_input_grad(dy, w, dx, stride, padding, dilation):
    (sh, sw), (ph, pw), (dil_h, dil_w) = stride, padding, dilation
    N, K, P, Q = dy.shape
    C, H, W = dx.shape[1:]
    R, S = w.shape[2:]
    eh, ew = dil_h * (R - 1), dil_w * (S - 1)
    if (sh, sw) != (1, 1) or eh < ph or ew < pw:  # (a padding wider than the kernel: rows to crop)
        return depthwise_backward_input(contiguous(dy), contiguous(w), dx, sh, sw, ph, pw, dil_h, dil_w)
    m = K // C
    Hd = H + eh  # the delta bordered by eh - ph rows and ew - pw columns
    bufs, Wd = plane_buffers(min(get_num_threads(), N * C), m, Hd, W + ew, S, dil_w, dx.dtype)
    offs = (np.arange(m)[:, None] * Hd * Wd + _depthwise_taps(R, S, Wd, dil_h, dil_w)[None, :]).reshape(-1)
    wt = np.ascontiguousarray(w[:, 0, ::-1, ::-1].reshape(C, m * R * S, 1))  # the flipped taps, m per input
    return depthwise_unpacked(contiguous(dy), eh - ph, ew - pw, Hd, Wd, offs, wt, np.zeros(C, dx.dtype), dx, m, 1,
                              bufs, False)


def _depthwise_weight_grad(dy, x, dw, db, stride, padding, dilation):
    (sh, sw), (ph, pw), (dil_h, dil_w) = stride, padding, dilation
    x, dy = contiguous(x), contiguous(dy)
    if (sh, sw) == (1, 1):
        H, W = x.shape[2:]
        R, S = dw.shape[2:]
        Wp = W + 2 * pw
        depthwise_weight_dot(x, ph, pw, H + 2 * ph, Wp, _depthwise_taps(R, S, Wp, dil_h, dil_w), dy, dw, db,
                             get_num_threads())
        with np.errstate(invalid="ignore"):
            if np.isfinite(dw).all() and np.isfinite(db).all():
                return dw
        dw[...], db[...] = 0, 0  # a non-finite input met a junk column (or the sums are truly so): exactly
    return depthwise_backward_weight(dy, x, dw, db, sh, sw, ph, pw, dil_h, dil_w)


def _group(a, g, groups):
    """Channels of group g of an (N, C, H, W) array, as a contiguous copy (the array itself for one group)."""
    N, C = a.shape[:2]
    return np.ascontiguousarray(a.reshape(N, groups, C // groups, *a.shape[2:])[:, g])


def _into_group(dst, g, groups, src):
    N, C = dst.shape[:2]
    dst.reshape(N, groups, C // groups, *dst.shape[2:])[:, g] = src


def conv2d_forward(x, w, b, y, stride, padding, dilation, relu, groups):
    """y (N, K, P, Q), uninitialised, = conv2d(x, w, b) with ``groups`` (clamped at zero with ``relu``).
    Depthwise (groups == C) has kernels of its own; other groupings run the kernels above group by group."""
    if groups > 1 and groups == x.shape[1]:
        return _depthwise_forward(x, w, b, y, stride, padding, dilation, relu)
    return _forward(x, w, b, y, stride, padding, dilation, relu, groups)


def conv2d_backward_input(dy, w, dx, stride, padding, dilation, groups):
    """dx (N, C, H, W), uninitialised, = the input gradient: one stride-1 product per stride phase of dx,
    reading the delta in place instead of spreading it into a mostly-zero buffer, or at stride 1 the unfolded
    forward of the delta (group by group, or the depthwise kernel)."""
    if groups > 1 and groups == dx.shape[1]:
        return _depthwise_input_grad(dy, w, dx, stride, padding, dilation)
    return _input_grad(dy, w, dx, stride, padding, dilation, groups)


def conv2d_backward_weight(dy, x, dw, db, stride, padding, dilation, groups):
    """dw (K, C/groups, R, S), zeroed, += the weight gradient; db, zeroed, += the bias gradient when it has K
    entries (summed while the kernel reads the delta anyway), nothing when it has none."""
    if groups > 1 and groups == x.shape[1]:
        return _depthwise_weight_grad(dy, x, dw, db, stride, padding, dilation)
    return _weight_grad(dy, x, dw, db, stride, padding, dilation, groups)
