"""The convolution products on the GPU, read straight from the arrays: no padded copy, no im2col matrix, no
prepared weight matrix, no spread-out delta.

Both the forward and the input gradient are a product ``out[n, g*M + m, pos] = sum_l A[m, l] * B[l, pos]``
per image n and group g:

- forward: m is an output channel of the group, l = (c, r, s) a tap of its Cg input channels,
  A = w[g*M + m, c, r, s], B = x[n, g*Cg + c, p*sh - ph + r*dil_h, q*sw - pw + s*dil_w] (0 in the padding);
- input gradient: m is an input channel of the group, l = (k, r, s) a tap of its K/groups deltas,
  A = w[g*Kg + k, m, r, s], B = dy[n, g*Kg + k, (h + ph - r*dil_h) / sh, (w + pw - s*dil_w) / sw] where both
  divisions are exact and land inside dy, else 0 (the full correlation with the flipped kernel, strided).

``_conv_tiles`` computes a TM x TN tile (rows x positions) per block, TK terms of l at a time through shared
memory, each thread an RM x RN register block (rows ty + i*BY, positions tx + j*BX: a warp's loads and stores
are consecutive positions). ``_conv_direct`` gives one output to each thread, for products onto few rows
(depthwise convolutions, a first layer's input gradient), where a tile would leave most of its rows empty.
Blocks walk (positions, rows, image x group) with grid-stride loops, so any size runs on a capped grid; every
output is one thread's sum in a fixed order: the same result every run."""
from numba import cuda

from .. import config
from ._launch import kernel, launch_grid

TM, TN, TK, RM, RN = config.CUDA_TILE
if TM % RM or TN % RN or min(config.CUDA_TILE) < 1:
    raise ValueError(f"FASTCONV_CUDA_TILE must be TM,TN,TK,RM,RN with RM dividing TM and RN dividing TN, got {config.CUDA_TILE}")
BX, BY = TN // RN, TM // RM  # threads per block along positions and rows
THREADS = BX * BY
TM1, TN1 = TM + 1, TN + 1  # padded shared-tile rows (literals: a shared array's shape must be constant)
SMALL_ROWS = max(1, TM // 4)  # fewer rows per group than this: the direct kernel


@cuda.jit(device=True, inline=True)
def zero_block(acc):
    for i in range(RM):
        for j in range(RN):
            acc[i, j] = 0


@cuda.jit(device=True, inline=True)
def tile_step(sA, sB, acc, tx, ty):
    """acc (RM x RN) += this thread's share of the product of the shared tiles sA (TK x TM) and sB (TK x TN):
    rows ty + i*BY, columns tx + j*BX."""
    for t in range(TK):
        for i in range(RM):
            a = sA[t, ty + i * BY]
            for j in range(RN):
                acc[i, j] += a * sB[t, tx + j * BX]


@kernel("T[:,:,:,:], T[:,:,:,:], T[:], T[:,:,:,:], i8, i8, i8, i8, i8, i8, i8, b1, b1")
def _conv_tiles(src, w, bias, out, sh, sw, ph, pw, dil_h, dil_w, groups, input_grad, relu):
    sA = cuda.shared.array((TK, TM1), dtype=src.dtype)  # A transposed; +1: the column writes hit distinct banks
    sB = cuda.shared.array((TK, TN), dtype=src.dtype)
    acc = cuda.local.array((RM, RN), dtype=src.dtype)
    N, Mall, Ho, Wo = out.shape
    Hs, Ws = src.shape[2], src.shape[3]
    R, S = w.shape[2], w.shape[3]
    RS = R * S
    M = Mall // groups  # rows of the product per group
    Ls = src.shape[1] // groups  # source channels per group
    L = Ls * RS
    PQ = Ho * Wo
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    tid = ty * BX + tx
    for z in range(cuda.blockIdx.z, N * groups, cuda.gridDim.z):
        n = z // groups
        g = z - n * groups
        for m0 in range(cuda.blockIdx.y * TM, M, cuda.gridDim.y * TM):
            for j0 in range(cuda.blockIdx.x * TN, PQ, cuda.gridDim.x * TN):
                zero_block(acc)
                for l0 in range(0, L, TK):
                    for e in range(tid, TK * TM, THREADS):  # the A tile: consecutive threads, consecutive taps
                        m = e // TK
                        t = e - m * TK
                        l = l0 + t
                        if m0 + m < M and l < L:
                            cs = l // RS
                            r = (l - cs * RS) // S
                            s = l - cs * RS - r * S
                            if input_grad:
                                sA[t, m] = w[g * Ls + cs, m0 + m, r, s]
                            else:
                                sA[t, m] = w[g * M + m0 + m, cs, r, s]
                        else:
                            sA[t, m] = 0
                    for e in range(tid, TK * TN, THREADS):  # the B tile: consecutive threads, consecutive positions
                        t = e // TN
                        j = e - t * TN
                        l = l0 + t
                        pos = j0 + j
                        inside = False
                        if l < L and pos < PQ:
                            cs = l // RS
                            r = (l - cs * RS) // S
                            s = l - cs * RS - r * S
                            p = pos // Wo
                            q = pos - p * Wo
                            if input_grad:
                                hh = p + ph - r * dil_h
                                ww = q + pw - s * dil_w
                                if hh >= 0 and ww >= 0 and hh % sh == 0 and ww % sw == 0:
                                    hh //= sh
                                    ww //= sw
                                    inside = hh < Hs and ww < Ws
                            else:
                                hh = p * sh - ph + r * dil_h
                                ww = q * sw - pw + s * dil_w
                                inside = 0 <= hh < Hs and 0 <= ww < Ws
                            if inside:
                                sB[t, j] = src[n, g * Ls + cs, hh, ww]
                        if not inside:
                            sB[t, j] = 0
                    cuda.syncthreads()
                    tile_step(sA, sB, acc, tx, ty)
                    cuda.syncthreads()
                for i in range(RM):
                    m = m0 + ty + i * BY
                    if m < M:
                        for j in range(RN):
                            pos = j0 + tx + j * BX
                            if pos < PQ:
                                p = pos // Wo
                                v = acc[i, j] + bias[g * M + m]
                                if relu and v < 0:
                                    out[n, g * M + m, p, pos - p * Wo] = 0
                                else:
                                    out[n, g * M + m, p, pos - p * Wo] = v


@kernel("T[:,:,:,:], T[:,:,:,:], T[:], T[:,:,:,:], i8, i8, i8, i8, i8, i8, i8, b1, b1")
def _conv_direct(src, w, bias, out, sh, sw, ph, pw, dil_h, dil_w, groups, input_grad, relu):
    N, Mall, Ho, Wo = out.shape
    Hs, Ws = src.shape[2], src.shape[3]
    R, S = w.shape[2], w.shape[3]
    M = Mall // groups
    Ls = src.shape[1] // groups
    PQ = Ho * Wo
    for n in range(cuda.blockIdx.z, N, cuda.gridDim.z):
        for mo in range(cuda.blockIdx.y, Mall, cuda.gridDim.y):  # one row (channel) per block row: uniform weights
            g = mo // M
            m = mo - g * M
            for pos in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, PQ, cuda.gridDim.x * cuda.blockDim.x):
                p = pos // Wo
                q = pos - p * Wo
                acc = bias[mo]
                for cs in range(Ls):
                    for r in range(R):
                        if input_grad:
                            hh = p + ph - r * dil_h
                            if hh < 0 or hh % sh != 0 or hh // sh >= Hs:
                                continue
                            hh //= sh
                        else:
                            hh = p * sh - ph + r * dil_h
                            if hh < 0 or hh >= Hs:
                                continue
                        for s in range(S):
                            if input_grad:
                                ww = q + pw - s * dil_w
                                if ww < 0 or ww % sw != 0 or ww // sw >= Ws:
                                    continue
                                acc += w[g * Ls + cs, m, r, s] * src[n, g * Ls + cs, hh, ww // sw]
                            else:
                                ww = q * sw - pw + s * dil_w
                                if ww < 0 or ww >= Ws:
                                    continue
                                acc += w[mo, cs, r, s] * src[n, g * Ls + cs, hh, ww]
                if relu and acc < 0:
                    out[n, mo, p, q] = 0
                else:
                    out[n, mo, p, q] = acc


def conv_product(src, w, bias, out, stride, padding, dilation, groups, input_grad, relu):
    """out = the forward (``input_grad`` False: src is x) or the input gradient (True: src is dy) of a
    convolution with weights w (K, C/groups, R, S); ``bias`` has one entry per output channel of ``out``."""
    (sh, sw), (ph, pw), (dil_h, dil_w) = stride, padding, dilation
    N, Mall, Ho, Wo = out.shape
    M = Mall // groups
    args = (src, w, bias, out, sh, sw, ph, pw, dil_h, dil_w, groups, input_grad, relu)
    if M < SMALL_ROWS:
        tpb = config.THREADS_PER_BLOCK
        launch_grid(_conv_direct, (-(-Ho * Wo // tpb), Mall, N), tpb, *args)
    else:
        launch_grid(_conv_tiles, (-(-Ho * Wo // TN), -(-M // TM), N * groups), (BX, BY), *args)
    return out
