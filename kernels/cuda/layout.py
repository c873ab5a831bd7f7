"""Zero padding on the GPU, for the per-side padding the products do not take themselves (the functional
layer pads such an input first, on both targets)."""
from numba import cuda

from ._launch import kernel, launch
from .memory import zeros


@kernel("T[:,:,:,:], T[:,:,:,:], i8, i8")
def _pad(x, xp, top, left):
    N, C, H, W = x.shape
    for i in range(cuda.grid(1), N * C * H * W, cuda.gridsize(1)):  # grid-stride loop
        w = i % W
        h = (i // W) % H
        c = (i // (H * W)) % C
        n = i // (C * H * W)
        xp[n, c, h + top, w + left] = x[n, c, h, w]


def pad_sides(x, top, bottom, left, right):
    """x zero-padded by different amounts on each side (a new array)."""
    N, C, H, W = x.shape
    xp = zeros((N, C, H + top + bottom, W + left + right), x.dtype)
    launch(_pad, x.size, x, xp, top, left)
    return xp
