"""Softmax cross-entropy on the GPU (twin of kernels/cpu/loss.py): one thread per row."""
import math

from numba import cuda

from ._launch import kernel, launch


@kernel("T[:,:], i8[:], T[:,:], f8[:]")
def _softmax_ce(logits, labels, grad, losses):
    N, C = logits.shape
    for i in range(cuda.grid(1), N, cuda.gridsize(1)):  # grid-stride loop
        m = logits[i, 0]
        for j in range(1, C):
            m = max(m, logits[i, j])
        s = 0.0
        for j in range(C):
            s += math.exp(logits[i, j] - m)
        lse = m + math.log(s)
        losses[i] = lse - logits[i, labels[i]]
        for j in range(C):
            grad[i, j] = math.exp(logits[i, j] - lse) / N
        grad[i, labels[i]] -= 1.0 / N


def softmax_cross_entropy(logits, labels, grad, losses):
    launch(_softmax_ce, logits.shape[0], logits, labels, grad, losses)
    return grad
