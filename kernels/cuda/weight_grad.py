"""conv2d weight and bias gradients on the GPU, as blocked reductions without atomics.

The weight gradient of group g is the product ``dw[g*Kg + k, l] = sum_pos dy[n, g*Kg + k, p, q] *
x[n, g*Cg + c, p*sh - ph + r*dil_h, q*sw - pw + s*dil_w]`` over the N*P*Q output positions, l = (c, r, s).
The positions are cut into a fixed number of chunks (it depends only on the shapes); ``_weight_tiles`` computes
one chunk's sum for a TM x TN tile (output channels x taps) per block, TK positions at a time through shared
memory (the tiles of ``implicit_gemm.py``), into a partial buffer; ``_add_partials`` then adds each entry's
partials in chunk order. The bias gradient gives each (chunk, channel) a block whose threads stride over the
chunk and add their sums in a fixed tree. The result is the same every run."""
from numba import cuda

from .. import config
from ._launch import kernel, launch, launch_grid
from .implicit_gemm import BX, BY, RM, RN, THREADS, TK, TM, TM1, TN, tile_step, zero_block
from .memory import device_array

CHUNK = 256  # output positions per partial sum, at least
MAX_CHUNKS = 64  # ... and at most this many partial sums per entry
REDUCE_THREADS = 1 << (config.THREADS_PER_BLOCK.bit_length() - 1)  # a power of two: the tree halves it


def chunks(positions):
    """How many chunks the reductions cut ``positions`` output positions into."""
    return max(1, min(MAX_CHUNKS, -(-positions // CHUNK)))


@kernel("T[:,:,:,:], T[:,:,:,:], T[:,:,:], i8, i8, i8, i8, i8, i8, i8, i8, i8")
def _weight_tiles(x, dy, part, R, S, sh, sw, ph, pw, dil_h, dil_w, groups):
    sA = cuda.shared.array((TK, TM1), dtype=x.dtype)  # dy: positions x output channels
    sB = cuda.shared.array((TK, TN), dtype=x.dtype)  # x: positions x taps
    acc = cuda.local.array((RM, RN), dtype=x.dtype)
    G, K, L = part.shape  # chunks, output channels, taps C/groups*R*S
    N, _, P, Q = dy.shape
    H, W = x.shape[2], x.shape[3]
    Kg = K // groups
    Cg = x.shape[1] // groups
    RS = R * S
    PQ = P * Q
    MP = N * PQ
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    tid = ty * BX + tx
    for z in range(cuda.blockIdx.z, G * groups, cuda.gridDim.z):
        gc = z // groups  # the chunk
        g = z - gc * groups  # the group
        lo, hi = gc * MP // G, (gc + 1) * MP // G
        for k0 in range(cuda.blockIdx.y * TM, Kg, cuda.gridDim.y * TM):
            for j0 in range(cuda.blockIdx.x * TN, L, cuda.gridDim.x * TN):
                zero_block(acc)
                for t0 in range(lo, hi, TK):
                    for e in range(tid, TK * TM, THREADS):  # consecutive threads, consecutive positions
                        k = e // TK
                        t = e - k * TK
                        mp = t0 + t
                        if k0 + k < Kg and mp < hi:
                            n = mp // PQ
                            p = (mp - n * PQ) // Q
                            sA[t, k] = dy[n, g * Kg + k0 + k, p, mp - n * PQ - p * Q]
                        else:
                            sA[t, k] = 0
                    for e in range(tid, TK * TN, THREADS):  # consecutive threads, consecutive taps
                        t = e // TN
                        j = e - t * TN
                        mp = t0 + t
                        l = j0 + j
                        inside = False
                        if mp < hi and l < L:
                            n = mp // PQ
                            p = (mp - n * PQ) // Q
                            q = mp - n * PQ - p * Q
                            c = l // RS
                            r = (l - c * RS) // S
                            s = l - c * RS - r * S
                            hh = p * sh - ph + r * dil_h
                            ww = q * sw - pw + s * dil_w
                            inside = 0 <= hh < H and 0 <= ww < W
                            if inside:
                                sB[t, j] = x[n, g * Cg + c, hh, ww]
                        if not inside:
                            sB[t, j] = 0
                    cuda.syncthreads()
                    tile_step(sA, sB, acc, tx, ty)
                    cuda.syncthreads()
                for i in range(RM):
                    k = k0 + ty + i * BY
                    if k < Kg:
                        for j in range(RN):
                            l = j0 + tx + j * BX
                            if l < L:
                                part[gc, g * Kg + k, l] = acc[i, j]


@kernel("T[:,:,:,:], T[:,:]")
def _bias_partials(dy, part):
    sums = cuda.shared.array(REDUCE_THREADS, dtype=dy.dtype)
    G, K = part.shape
    N, _, P, Q = dy.shape
    PQ = P * Q
    M = N * PQ
    tid = cuda.threadIdx.x
    for gc in range(cuda.blockIdx.x, G, cuda.gridDim.x):
        for k in range(cuda.blockIdx.y, K, cuda.gridDim.y):
            sums[tid] = 0
            acc = sums[tid]  # (a zero of the array's type: float32 sums stay float32)
            for m in range(gc * M // G + tid, (gc + 1) * M // G, REDUCE_THREADS):
                n = m // PQ
                p = (m - n * PQ) // Q
                acc += dy[n, k, p, m - n * PQ - p * Q]
            sums[tid] = acc
            cuda.syncthreads()
            half = REDUCE_THREADS // 2
            while half > 0:  # a fixed tree: the same order every run
                if tid < half:
                    sums[tid] += sums[tid + half]
                cuda.syncthreads()
                half //= 2
            if tid == 0:
                part[gc, k] = sums[0]
            cuda.syncthreads()


@kernel("T[:,:], T[:]")
def _add_partials(part, out):
    G, E = part.shape
    for e in range(cuda.grid(1), E, cuda.gridsize(1)):  # grid-stride loop over entries
        acc = out[e]
        for g in range(G):  # in order: the same sum every run
            acc += part[g, e]
        out[e] = acc


def conv2d_backward_weight(x, dy, dw, db, stride, padding, dilation, groups):
    """dw (K, C/groups, R, S) += the weight gradient; db += the bias gradient when it has K entries."""
    (sh, sw), (ph, pw), (dil_h, dil_w) = stride, padding, dilation
    K, Cg, R, S = dw.shape
    N, _, P, Q = dy.shape
    G = chunks(N * P * Q)
    L = Cg * R * S
    part = device_array((G, K, L), dw.dtype)
    launch_grid(_weight_tiles, (-(-L // TN), -(-(K // groups) // TM), G * groups), (BX, BY),
                x, dy, part, R, S, sh, sw, ph, pw, dil_h, dil_w, groups)
    launch(_add_partials, dw.size, part.reshape(G, K * L), dw.reshape(dw.size))
    if db.size:
        conv2d_backward_bias(dy, db)
    return dw


def conv2d_backward_bias(dy, db):
    """db (K,) += the bias gradient, sum_{n,p,q} dy[n, k, p, q]."""
    N, K, P, Q = dy.shape
    G = chunks(N * P * Q)
    part = device_array((G, K), db.dtype)
    launch_grid(_bias_partials, (G, K, 1), REDUCE_THREADS, dy, part)
    launch(_add_partials, K, part, db)
    return db
