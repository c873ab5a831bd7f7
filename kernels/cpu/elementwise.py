"""Elementwise kernels over flat (1-D) views: activations, row sums, optimizer updates."""
import math

import numpy as np

from numba import prange

from ..config import cpu_kernel


@cpu_kernel
def relu_forward(x, y):
    """y = max(x, 0); NaN stays NaN."""
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v <= 0 else v
    return y


@cpu_kernel
def add_forward(a, b, y, relu):
    """y = a + b, clamped at zero with ``relu`` (NaN stays NaN)."""
    for i in prange(a.size):
        v = a[i] + b[i]
        y[i] = 0 if relu and v <= 0 else v
    return y


@cpu_kernel
def relu_backward(dy, x, dx):
    """dx = dy where x > 0, else 0."""
    for i in prange(x.size):
        dx[i] = dy[i] if x[i] > 0 else 0
    return dx


@cpu_kernel
def tanh_forward(x, y):
    for i in prange(x.size):
        y[i] = math.tanh(x[i])
    return y


@cpu_kernel
def tanh_backward(dy, y, dx):
    """dx = dy * (1 - y^2), y the forward output."""
    for i in prange(y.size):
        dx[i] = dy[i] * (1 - y[i] * y[i])
    return dx


@cpu_kernel
def sigmoid_forward(x, y):
    """y = 1 / (1 + exp(-x)), written to stay finite for large |x|."""
    for i in prange(x.size):
        v = x[i]
        if v >= 0:
            y[i] = 1 / (1 + math.exp(-v))
        else:
            e = math.exp(v)
            y[i] = e / (1 + e)
    return y


@cpu_kernel
def sigmoid_backward(dy, y, dx):
    """dx = dy * y * (1 - y), y the forward output."""
    for i in prange(y.size):
        dx[i] = dy[i] * y[i] * (1 - y[i])
    return dx


@cpu_kernel
def sum_rows(a, out):
    """out[j] = sum_i a[i, j] for a (M, N); out arrives zeroed. Each iteration owns one column."""
    M, N = a.shape
    for j in prange(N):
        acc = out[j]
        for i in range(M):
            acc += a[i, j]
        out[j] = acc
    return out


@cpu_kernel
def min_max(a, parts):
    """(min, max) of a non-empty flat integer array in one pass, split into ``parts`` ranges (each iteration
    owns its slot of the partial results)."""
    parts = max(1, min(parts, a.size))
    lo = np.empty(parts, a.dtype)
    hi = np.empty(parts, a.dtype)
    for part in prange(parts):
        i0, i1 = part * a.size // parts, (part + 1) * a.size // parts
        mn = a[i0]
        mx = a[i0]
        for i in range(i0 + 1, i1):
            v = a[i]
            mn = min(mn, v)
            mx = max(mx, v)
        lo[part] = mn
        hi[part] = mx
    return lo.min(), hi.max()


@cpu_kernel
def sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    """PyTorch's SGD on flat arrays: d = g + wd*p; buf = d (first step) or momentum*buf + (1-dampening)*d;
    step along d + momentum*buf (Nesterov) or buf (or d without momentum)."""
    for i in prange(p.size):
        d = g[i] + weight_decay * p[i]
        if momentum != 0:
            if first:
                b = d
            else:
                b = momentum * buf[i] + (1 - dampening) * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d
    return p


@cpu_kernel
def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """PyTorch's Adam (L2 weight decay added to the gradient), bias-corrected at 1-based ``step``."""
    bc1 = 1 - beta1**step
    bc2_sqrt = math.sqrt(1 - beta2**step)
    step_size = lr / bc1
    for i in prange(p.size):
        d = g[i] + weight_decay * p[i]
        mi = beta1 * m[i] + (1 - beta1) * d
        vi = beta2 * v[i] + (1 - beta2) * d * d
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) / bc2_sqrt + eps)
    return p
