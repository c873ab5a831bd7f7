"""conv2d weight and bias gradients on the GPU: one thread per weight element (dW) or per output channel (db),
each looping over the whole batch itself: no atomics, the same result every run."""
from numba import cuda

from ._launch import kernel, launch


@kernel("T[:,:,:,:], T[:,:,:,:], T[:,:], i8, i8, i8, i8, i8, i8, i8")
def _backward_weight(xp, dy, dw2, R, S, sh, sw, dil_h, dil_w, groups):
    K = dw2.shape[0]
    Cg = xp.shape[1] // groups
    CRS = Cg * R * S
    for i in range(cuda.grid(1), K * CRS, cuda.gridsize(1)):  # grid-stride loop
        k = i // CRS
        crs = i % CRS
        c = crs // (R * S)
        r = (crs // S) % R
        s = crs % S
        c += k // (K // groups) * Cg  # the input channel, in the group of output channel k
        N, _, P, Q = dy.shape
        acc = dw2[k, crs]  # arrives zeroed
        for n in range(N):  # the whole batch in this thread: no atomics
            for p in range(P):
                for q in range(Q):
                    acc += dy[n, k, p, q] * xp[n, c, p * sh + r * dil_h, q * sw + s * dil_w]
        dw2[k, crs] = acc


def conv2d_backward_weight(xp, dy, dw2, R, S, sh, sw, dil_h, dil_w, groups, db):
    """dw2 (K, C/groups*R*S) += the weight gradient; db += the bias gradient when it has K entries (its own
    kernel here)."""
    launch(_backward_weight, dw2.size, xp, dy, dw2, R, S, sh, sw, dil_h, dil_w, groups)
    if db.size:
        conv2d_backward_bias(dy, db)
    return dw2


@kernel("T[:,:,:,:], T[:]")
def _backward_bias(dy, db):
    N, K, P, Q = dy.shape
    for k in range(cuda.grid(1), K, cuda.gridsize(1)):  # grid-stride loop
        acc = db[k]
        for n in range(N):
            for p in range(P):
                for q in range(Q):
                    acc += dy[n, k, p, q]
        db[k] = acc


def conv2d_backward_bias(dy, db):
    launch(_backward_bias, db.size, dy, db)
    return db
