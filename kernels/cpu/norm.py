"""Batch normalisation over (N, H, W) per channel, and global average pooling.

Each prange iteration owns one channel (statistics, the backward's sums and its dx entries) or one plane.
The statistics take two passes per channel (the mean, then the squared deviations from it), summed in
float64, so a channel whose mean is large next to its spread (1e4 against 1) keeps its variance. No checking
here: shapes, dtypes and contiguity are the caller's contract.
"""
import numpy as np
from numba import prange

from ..config import cpu_kernel


@cpu_kernel
def batch_norm_stats(x, mean, var):
    """mean[c] and the biased var[c] of x (N, C, H, W) over n, h, w (float64 outputs)."""
    N, C, H, W = x.shape
    HW = H * W
    xf = x.reshape(N, C, HW)
    M = N * HW
    for c in prange(C):  # one channel per iteration
        s = 0.0
        for n in range(N):
            row = xf[n, c]
            for j in range(HW):
                s += row[j]
        mu = s / M
        d2 = 0.0
        for n in range(N):
            row = xf[n, c]
            for j in range(HW):
                d = row[j] - mu
                d2 += d * d
        mean[c] = mu
        var[c] = d2 / M
    return mean


@cpu_kernel
def batch_norm_apply(x, scale, shift, y, relu):
    """y[n,c] = x[n,c] * scale[c] + shift[c], clamped at zero with ``relu``: the normalisation once the
    statistics are known (scale = weight / sqrt(var + eps), shift = bias - mean * scale, both in x's dtype)."""
    N, C, H, W = x.shape
    HW = H * W
    xf = x.reshape(N, C, HW)
    yf = y.reshape(N, C, HW)
    z = np.zeros(1, y.dtype)[0]
    for nc in prange(N * C):  # one plane per iteration
        n = nc // C
        c = nc - n * C
        a, b = scale[c], shift[c]
        src, dst = xf[n, c], yf[n, c]
        for j in range(HW):
            v = src[j] * a + b
            if relu and v < 0:
                v = z
            dst[j] = v
    return y


@cpu_kernel(parallel=False, inline=True)
def _channel_sums(xf, gf, c, mu, inv, a0, b0, relu):
    """(sum g, sum g * xhat) over the N planes of channel c (float64 sums)."""
    sg = 0.0
    sgx = 0.0
    for n in range(xf.shape[0]):
        xr, gr = xf[n, c], gf[n, c]
        for j in range(xf.shape[2]):
            g = gr[j]
            if relu and not xr[j] * a0 + b0 > 0:
                g = 0.0
            sg += g
            sgx += g * ((xr[j] - mu) * inv)
    return sg, sgx


@cpu_kernel(parallel=False, inline=True)
def _plane_dx(xr, gr, dr, mu, inv, a0, b0, relu, k, a, b, z):
    """dr = k * (g - a - xhat * b) along one plane (g zero where the fused ReLU clamped)."""
    for j in range(xr.size):
        g = gr[j]
        if relu and not xr[j] * a0 + b0 > 0:
            g = z
        dr[j] = k * (g - a - (xr[j] - mu) * inv * b)


@cpu_kernel
def batch_norm_backward_sums(dy, x, mean, invstd, scale, shift, relu, dweight, dbias):
    """The per-channel sums of the batch-normalisation gradient: with xhat = (x - mean) * invstd and g the
    delta (zero where the fused ReLU clamped, its mask x * scale + shift > 0 recomputed as the forward
    computed it), dbias[c] = sum g and dweight[c] = sum g * xhat over (N, H, W)."""
    N, C, H, W = x.shape
    xf, gf = x.reshape(N, C, H * W), dy.reshape(N, C, H * W)
    for c in prange(C):  # one channel per iteration
        sg, sgx = _channel_sums(xf, gf, c, mean[c], invstd[c], scale[c], shift[c], relu)
        dweight[c] = sgx
        dbias[c] = sg
    return dweight


@cpu_kernel
def batch_norm_backward_dx(dy, x, mean, invstd, weight, scale, shift, relu, M, dweight, dbias, dx):
    """dx, uninitialised, = weight * invstd * (g - dbias / M - xhat * dweight / M) from the sums of
    ``batch_norm_backward_sums`` over all M values of a channel (the batch's statistics), or
    weight * invstd * g when M is 0 (fixed statistics)."""
    N, C, H, W = x.shape
    xf, gf, df = x.reshape(N, C, H * W), dy.reshape(N, C, H * W), dx.reshape(N, C, H * W)
    z = np.zeros(1, dx.dtype)[0]
    for nc in prange(N * C):  # one plane per iteration
        n = nc // C
        c = nc - n * C
        a = dbias[c] / M if M > 0 else 0.0
        b = dweight[c] / M if M > 0 else 0.0
        _plane_dx(xf[n, c], gf[n, c], df[n, c], mean[c], invstd[c], scale[c], shift[c], relu, weight[c] * invstd[c],
                  a, b, z)
    return dx


@cpu_kernel
def batch_norm_backward(dy, x, mean, invstd, weight, scale, shift, relu, M, dweight, dbias, dx):
    """``batch_norm_backward_sums`` and then ``batch_norm_backward_dx`` in one pass over the channels: each
    iteration owns a channel, sums it and then writes its dx while its values are still in cache (about two
    thirds of the memory traffic of the two kernels). The same results: dx is computed from the sums as
    stored in dweight and dbias."""
    N, C, H, W = x.shape
    xf, gf, df = x.reshape(N, C, H * W), dy.reshape(N, C, H * W), dx.reshape(N, C, H * W)
    z = np.zeros(1, dx.dtype)[0]
    for c in prange(C):  # one channel per iteration
        mu, inv, a0, b0 = mean[c], invstd[c], scale[c], shift[c]
        sg, sgx = _channel_sums(xf, gf, c, mu, inv, a0, b0, relu)
        dweight[c] = sgx
        dbias[c] = sg
        a = dbias[c] / M if M > 0 else 0.0
        b = dweight[c] / M if M > 0 else 0.0
        for n in range(N):
            _plane_dx(xf[n, c], gf[n, c], df[n, c], mu, inv, a0, b0, relu, weight[c] * inv, a, b, z)
    return dx


@cpu_kernel
def global_avg_pool_forward(x, y):
    """y[n, c] = the mean of plane x[n, c] (y is (N, C), summed in float64)."""
    N, C, H, W = x.shape
    HW = H * W
    xf = x.reshape(N * C, HW)
    yf = y.reshape(N * C)
    for nc in prange(N * C):  # one plane per iteration
        s = 0.0
        row = xf[nc]
        for j in range(HW):
            s += row[j]
        yf[nc] = s / HW
    return y


@cpu_kernel
def global_avg_pool_backward(dy, dx):
    """dx[n, c, h, w] = dy[n, c] / (H*W); dx is uninitialised."""
    N, C, H, W = dx.shape
    HW = H * W
    df = dx.reshape(N * C, HW)
    gf = dy.reshape(N * C)
    for nc in prange(N * C):  # one plane per iteration
        v = gf[nc] / HW
        row = df[nc]
        for j in range(HW):
            row[j] = v
    return dx
