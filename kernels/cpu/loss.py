"""Softmax cross-entropy with a numerically stable log-softmax."""
import math

from numba import prange

from ..config import cpu_kernel


@cpu_kernel
def softmax_cross_entropy(logits, labels, grad, losses):
    """losses[i] = logsumexp(logits[i]) - logits[i, labels[i]]; grad[i] = (softmax(logits[i]) - onehot) / N.

    The row maximum is subtracted before exp, so logits of any finite size give a finite loss and gradient.
    """
    N, C = logits.shape
    for i in prange(N):  # one row per iteration
        m = logits[i, 0]
        for j in range(1, C):
            if logits[i, j] > m:
                m = logits[i, j]
        s = 0.0
        for j in range(C):
            s += math.exp(logits[i, j] - m)
        lse = m + math.log(s)
        losses[i] = lse - logits[i, labels[i]]
        for j in range(C):
            grad[i, j] = math.exp(logits[i, j] - lse) / N
        grad[i, labels[i]] -= 1.0 / N
    return grad
