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


@kernel("T[:,:], i8[:], i8[:]")
def _hits(logits, labels, hits):
    N, C = logits.shape
    for i in range(cuda.grid(1), N, cuda.gridsize(1)):  # grid-stride loop
        best = 0
        for j in range(1, C):  # the first maximum, as numpy's argmax
            if logits[i, j] > logits[i, best]:
                best = j
        hits[i] = 1 if best == labels[i] else 0


def hits(logits, labels, out):
    """out (N,) int64 = 1 where a row's first maximum is its label, else 0."""
    launch(_hits, logits.shape[0], logits, labels, out)
    return out
