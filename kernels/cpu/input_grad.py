"""conv2d input gradient: the full convolution of the delta with the 180-degree flipped kernel, computed one
stride phase of dx at a time on the unpacked product, so no spread-out zeros are multiplied.

No checking here: shapes, dtypes and contiguity are the caller's contract.
"""
import numpy as np

from . import buffers
from .layout import pad_into
from .product import unpacked_product
from .taps import input_grad_taps, phase_margin


def conv2d_backward_input_phased(dy, w, dx, sh, sw, dil_h, dil_w, ph, pw):
    """dx (N, C, H, W), uninitialised, = the input gradient, one stride phase of dx at a time:
    dx[n, c, rho + sh*m, sig + sw*q] = sum over the taps (k, r, s) with rho + ph - r*dil_h = sh*e and
    sig + pw - s*dil_w = sw*f of w[k, c, r, s] * dy[n, k, m + e, q + f]: a stride-1 correlation of the delta (laid
    into a zero border sized by ``phase_margin``) with that phase's taps. For stride 1 this is the full correlation with the
    flipped kernel; for larger strides it multiplies no spread-out zeros. The phases are the problems of one
    ``unpacked_product`` call, which writes every input of every phase that a tap reaches; the others are zeroed."""
    N, K, P, Q = dy.shape
    C, R, S = w.shape[1], w.shape[2], w.shape[3]
    H, W = dx.shape[2], dx.shape[3]
    top, Hd = phase_margin(H, sh, ph, R, dil_h, P)
    left, Wd = phase_margin(W, sw, pw, S, dil_w, Q)
    offs, rows, tstart, grids, wt = input_grad_taps(w, H, W, sh, sw, dil_h, dil_w, ph, pw, top, left, Hd, Wd)
    if len(grids) < min(sh, H) * min(sw, W):  # some phase gets no tap: its inputs have zero gradient
        dx[...] = 0
    if offs.size == 0:
        return dx
    dyp = pad_into(dy, buffers.empty((N, K, Hd, Wd), dy.dtype), top, left)
    return unpacked_product(dyp.reshape(-1), K * Hd * Wd, Hd, Wd, offs, rows, tstart, wt, np.zeros(C, dx.dtype), dx, grids,
                   np.array([sh, sw, 0, top, Hd - top - P]))
