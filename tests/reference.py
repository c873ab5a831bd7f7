"""Slow references written straight from the equations (the README's maths table): plain numpy loops, no cleverness.

Indices: x[n, c, p*sh + r*dh - ph, q*sw + s*dw - pw] with zeros (conv, avg pool) or -inf
(max pool) outside the input.
"""
import numpy as np


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def out_size(size, pad, dil, k, stride):
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def sides(padding):
    """(top, bottom, left, right) of an int, an (h, w) pair or ((top, bottom), (left, right))."""
    if isinstance(padding, (tuple, list)) and all(isinstance(p, (tuple, list)) for p in padding):
        return (*padding[0], *padding[1])
    ph, pw = _pair(padding)
    return (ph, ph, pw, pw)


def conv_out(H, W, R, S, stride, padding, dilation):
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    t, b, l, r = sides(padding)
    return (H + t + b - dh * (R - 1) - 1) // sh + 1, (W + l + r - dw * (S - 1) - 1) // sw + 1


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n,k,p,q] = b[k] + sum_{c in k's group, r, s} w[k, c, r, s] x[n, c, p*sh + r*dh - top, q*sw + s*dw - left]."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    top, _, left, _ = sides(padding)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    Kg = K // groups
    P, Q = conv_out(H, W, R, S, stride, padding, dilation)
    y = np.zeros((N, K, P, Q), x.dtype)
    for g in range(groups):
        xg, wg = x[:, g * Cg : (g + 1) * Cg], w[g * Kg : (g + 1) * Kg]
        for p in range(P):
            for q in range(Q):
                for r in range(R):
                    for s in range(S):
                        h, v = p * sh + r * dh - top, q * sw + s * dw - left
                        if 0 <= h < H and 0 <= v < W:
                            # sum over c of x[n, c, h, v] * w[k, c, r, s], for every n and k of the group
                            y[:, g * Kg : (g + 1) * Kg, p, q] += xg[:, :, h, v] @ wg[:, :, r, s].T
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_backward_input(dy, w, x_shape, stride=1, padding=0, dilation=1, groups=1):
    """dE/dx_{i,j} = sum_{r,s} delta_{i-r, j-s} w_{r,s}, generalised: the delta row feeding input row i through
    kernel row r is p = (i + top - r*dh) / sh, when that is a whole number inside the delta."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    top, _, left, _ = sides(padding)
    N, C, H, W = x_shape
    K, Cg, R, S = w.shape
    Kg = K // groups
    P, Q = dy.shape[2:]
    dx = np.zeros(x_shape, dy.dtype)
    for g in range(groups):
        dyg, wg = dy[:, g * Kg : (g + 1) * Kg], w[g * Kg : (g + 1) * Kg]
        for i in range(H):
            for j in range(W):
                for r in range(R):
                    for s in range(S):
                        tp, tq = i + top - r * dh, j + left - s * dw
                        if tp % sh or tq % sw:
                            continue
                        p, q = tp // sh, tq // sw
                        if 0 <= p < P and 0 <= q < Q:
                            dx[:, g * Cg : (g + 1) * Cg, i, j] += dyg[:, :, p, q] @ wg[:, :, r, s]
    return dx


def conv2d_backward_weight(dy, x, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """dE/dw_{r,s} = sum_{p,q} delta_{p,q} x_{p*sh + r*dh - top, q*sw + s*dw - left}, summed over the batch."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    top, _, left, _ = sides(padding)
    _, _, H, W = x.shape
    K, Cg, R, S = w_shape
    Kg = K // groups
    P, Q = dy.shape[2:]
    dwt = np.zeros(w_shape, dy.dtype)
    for g in range(groups):
        dyg, xg = dy[:, g * Kg : (g + 1) * Kg], x[:, g * Cg : (g + 1) * Cg]
        for r in range(R):
            for s in range(S):
                for p in range(P):
                    for q in range(Q):
                        h, v = p * sh + r * dh - top, q * sw + s * dw - left
                        if 0 <= h < H and 0 <= v < W:
                            dwt[g * Kg : (g + 1) * Kg, :, r, s] += dyg[:, :, p, q].T @ xg[:, :, h, v]
    return dwt


def conv2d_backward_bias(dy):
    return dy.sum(axis=(0, 2, 3))


def _pool_len(size, k, stride, lo, hi, dil, ceil_mode):
    """PyTorch's pooling output length: floor or ceil of (size + lo + hi - dil*(k-1) - 1) / stride, plus one;
    with ceil_mode a last window that starts past the input and its leading padding is dropped."""
    span = size + lo + hi - dil * (k - 1) - 1
    n = -(-span // stride) + 1 if ceil_mode else span // stride + 1
    if ceil_mode and (n - 1) * stride >= size + lo:
        n -= 1
    return n


def _windows(H, W, kernel_size, stride, padding, dilation=1, ceil_mode=False, count_include_pad=True):
    """Every output (p, q) with its window's cells inside the input and the average's divisor."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    dh, dw = _pair(dilation)
    t, b, l, r = sides(padding)
    P, Q = _pool_len(H, kh, sh, t, b, dh, ceil_mode), _pool_len(W, kw, sw, l, r, dw, ceil_mode)
    for p in range(P):
        for q in range(Q):
            rows = [p * sh - t + i * dh for i in range(kh)]
            cols = [q * sw - l + j * dw for j in range(kw)]
            cells = [(h, v) for h in rows for v in cols if 0 <= h < H and 0 <= v < W]
            if count_include_pad:  # the window, cut at the end of the padded input
                area = (min(rows[-1] + 1, H + b) - rows[0]) * (min(cols[-1] + 1, W + r) - cols[0])
            else:
                area = len(cells)
            yield p, q, P, Q, cells, area


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    N, C, H, W = x.shape
    wins = list(_windows(H, W, kernel_size, stride, padding, dilation, ceil_mode))
    P, Q = wins[0][2], wins[0][3]
    y = np.zeros((N, C, P, Q), x.dtype)
    idx = np.zeros((N, C, P, Q), np.int64)
    for n in range(N):
        for c in range(C):
            for p, q, _, _, cells, _ in wins:
                vals = [x[n, c, h, v] for h, v in cells]
                best = int(np.argmax(vals))
                y[n, c, p, q] = vals[best]
                idx[n, c, p, q] = cells[best][0] * W + cells[best][1]
    return y, idx


def max_pool2d_backward(dy, idx, x_shape):
    N, C, H, W = x_shape
    dx = np.zeros(x_shape, dy.dtype)
    for n in range(N):
        for c in range(C):
            for p in range(dy.shape[2]):
                for q in range(dy.shape[3]):
                    f = idx[n, c, p, q]
                    dx[n, c, f // W, f % W] += dy[n, c, p, q]
    return dx


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    N, C, H, W = x.shape
    wins = list(_windows(H, W, kernel_size, stride, padding, 1, ceil_mode, count_include_pad))
    y = np.zeros((N, C, wins[0][2], wins[0][3]), x.dtype)
    for p, q, _, _, cells, area in wins:
        y[:, :, p, q] = sum(x[:, :, h, v] for h, v in cells) / area
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    dx = np.zeros(x_shape, dy.dtype)
    for p, q, _, _, cells, area in _windows(x_shape[2], x_shape[3], kernel_size, stride, padding, 1, ceil_mode,
                                            count_include_pad):
        for h, v in cells:
            dx[:, :, h, v] += dy[:, :, p, q] / area
    return dx


def relu(x):
    return np.where(x > 0, x, 0).astype(x.dtype)


def relu_backward(dy, x):
    return np.where(x > 0, dy, 0).astype(dy.dtype)


def numeric_grad(f, x, dy, eps=1e-6):
    """Central finite differences of L(x) = sum(f(x) * dy) with respect to x (float64)."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = np.sum(f(x) * dy)
        flat[i] = old - eps
        lo = np.sum(f(x) * dy)
        flat[i] = old
        gflat[i] = (hi - lo) / (2 * eps)
    return g


def batch_norm2d(x, weight, bias, eps=1e-5, mean=None, var=None):
    """(x - mean) / sqrt(var + eps) * weight + bias per channel; the batch's mean and biased variance when
    none are given. Returns (y, mean, var)."""
    if mean is None:
        mean = x.mean(axis=(0, 2, 3))
        var = ((x - mean[None, :, None, None]) ** 2).mean(axis=(0, 2, 3))
    c = lambda a: np.asarray(a, np.float64)[None, :, None, None]  # noqa: E731
    y = (x - c(mean)) / np.sqrt(c(var) + eps) * c(weight) + c(bias)
    return y.astype(x.dtype), mean, var


def global_avg_pool2d(x):
    return x.mean(axis=(2, 3), keepdims=True)
