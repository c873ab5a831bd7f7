"""conv2d weight and bias gradients on the GPU, as blocked reductions without atomics: the N*P*Q output
positions are cut into a fixed number of chunks (it depends only on the shapes), one thread sums one chunk for
one weight (or bias) entry into a partial buffer, and a second pass adds each entry's partials in order. The
result is the same every run, and there are chunks x entries threads instead of one per entry (150 for LeNet's
first layer)."""
from numba import cuda

from ._launch import kernel, launch
from .memory import device_array

CHUNK = 256  # output positions per partial sum, at least
MAX_CHUNKS = 64  # ... and at most this many partial sums per entry


def chunks(positions):
    """How many chunks the reductions cut ``positions`` output positions into."""
    return max(1, min(MAX_CHUNKS, -(-positions // CHUNK)))


@kernel("T[:,:,:,:], T[:,:,:,:], T[:,:], i8, i8, i8, i8, i8, i8, i8")
def _weight_partials(xp, dy, part, R, S, sh, sw, dil_h, dil_w, groups):
    G, E = part.shape  # chunks, weight entries K * Cg*R*S
    N, K, P, Q = dy.shape
    Cg = xp.shape[1] // groups
    CRS = Cg * R * S
    M = N * P * Q
    for i in range(cuda.grid(1), G * E, cuda.gridsize(1)):  # grid-stride loop over (chunk, entry)
        g = i // E
        e = i - g * E
        k = e // CRS
        crs = e - k * CRS
        c = crs // (R * S) + k // (K // groups) * Cg  # the input channel, in the group of output channel k
        r = (crs // S) % R
        s = crs % S
        part[g, e] = 0
        acc = part[g, e]  # (a zero of the array's type: float32 sums stay float32)
        for m in range(g * M // G, (g + 1) * M // G):  # this chunk's positions (n, p, q)
            q = m % Q
            p = (m // Q) % P
            n = m // (P * Q)
            acc += dy[n, k, p, q] * xp[n, c, p * sh + r * dil_h, q * sw + s * dil_w]
        part[g, e] = acc


@kernel("T[:,:,:,:], T[:,:]")
def _bias_partials(dy, part):
    G, K = part.shape
    N, _, P, Q = dy.shape
    M = N * P * Q
    for i in range(cuda.grid(1), G * K, cuda.gridsize(1)):  # grid-stride loop over (chunk, channel)
        g = i // K
        k = i - g * K
        part[g, k] = 0
        acc = part[g, k]
        for m in range(g * M // G, (g + 1) * M // G):
            q = m % Q
            p = (m // Q) % P
            n = m // (P * Q)
            acc += dy[n, k, p, q]
        part[g, k] = acc


@kernel("T[:,:], T[:]")
def _add_partials(part, out):
    G, E = part.shape
    for e in range(cuda.grid(1), E, cuda.gridsize(1)):  # grid-stride loop over entries
        acc = out[e]
        for g in range(G):  # in order: the same sum every run
            acc += part[g, e]
        out[e] = acc


def conv2d_backward_weight(xp, dy, dw2, R, S, sh, sw, dil_h, dil_w, groups, db):
    """dw2 (K, C/groups*R*S) += the weight gradient; db += the bias gradient when it has K entries."""
    N, K, P, Q = dy.shape
    G = chunks(N * P * Q)
    part = device_array((G, dw2.size), dw2.dtype)
    launch(_weight_partials, part.size, xp, dy, part, R, S, sh, sw, dil_h, dil_w, groups)
    launch(_add_partials, dw2.size, part, dw2.reshape(dw2.size))
    if db.size:
        conv2d_backward_bias(dy, db)
    return dw2


def conv2d_backward_bias(dy, db):
    """db (K,) += the bias gradient, sum_{n,p,q} dy[n, k, p, q]."""
    N, K, P, Q = dy.shape
    G = chunks(N * P * Q)
    part = device_array((G, K), db.dtype)
    launch(_bias_partials, part.size, dy, part)
    launch(_add_partials, K, part, db)
    return db
