"""Batch normalisation and global average pooling.

Batch normalisation per channel c of x (N, C, H, W), over M = N*H*W values:
``y = (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c]``, with the batch's mean and biased variance in
training and the running statistics in inference. Global average pooling: ``y[n, c, 0, 0] = mean of x[n, c]``.
"""
from collections import namedtuple

import numpy as np

from .._backend import backend_for
from .._checks import float_array, grad_shape, same_dtype, to_host

__all__ = ["batch_norm2d", "batch_norm2d_backward", "batch_norm2d_inference", "global_avg_pool2d",
           "global_avg_pool2d_backward"]

# What the backward needs from a batch-normalisation forward: the statistics it normalised with (float64, on
# the host), the per-channel scale and shift it applied (x's dtype, on x's target), and the count M of values
# per channel the statistics came from (0 for fixed statistics; with data-parallel training, over all ranks).
BatchNormCache = namedtuple("BatchNormCache", "mean var invstd scale shift n_values relu")

_sum_over_ranks = None  # set by fastconv.distributed.init: sums a float64 array over the ranks


def set_rank_reducer(reduce):
    """Make training-mode batch normalisation use the statistics of the global batch: ``reduce(a)`` returns
    the sum of a float64 host array over all ranks (None: this process alone)."""
    global _sum_over_ranks
    _sum_over_ranks = reduce


def _check(x, weight, bias):
    x = float_array("x", x, 4)
    C = x.shape[1]
    for name, a in (("weight", weight), ("bias", bias)):
        float_array(name, a, 1)
        if tuple(a.shape) != (C,):
            raise ValueError(f"{name} must have shape ({C},) (one per channel of x, shape {tuple(x.shape)}), "
                             f"got {tuple(a.shape)}")
    same_dtype(("x", "weight", "bias"), (x, weight, bias))
    return x


def _normalise(be, x, mean, var, weight, bias, eps, relu, count):
    invstd = 1.0 / np.sqrt(var + eps)
    w, b = to_host(weight).astype(np.float64), to_host(bias).astype(np.float64)
    scale = be.asarray((w * invstd).astype(x.dtype))
    shift = be.asarray((b - mean * w * invstd).astype(x.dtype))
    y = be.empty(x.shape, x.dtype)
    be.batch_norm_apply(be.contiguous(x), scale, shift, y, bool(relu))
    return y, BatchNormCache(mean, var, invstd, scale, shift, count, bool(relu))


def batch_norm2d(x, weight, bias, eps=1e-5, relu=False):
    """Training-mode batch normalisation with the batch's statistics (clamped at zero with ``relu``).

    Parameters
    ----------
    x : array (N, C, H, W) with N*H*W > 1
    weight, bias : arrays (C,)
    eps : float added to the variance

    Returns
    -------
    y : array (N, C, H, W)
    cache : BatchNormCache, for :func:`batch_norm2d_backward`; its ``mean`` and ``var`` (biased) are the
        batch statistics, float64 (C,) on the host.
    """
    x = _check(x, weight, bias)
    N, C, H, W = x.shape
    if N * H * W < 2:
        raise ValueError(f"batch_norm2d in training mode needs more than one value per channel, got x of shape "
                         f"{tuple(x.shape)} (N*H*W = {N * H * W}); use the running statistics (eval mode)")
    be = backend_for(x, weight, bias)
    mean, var = be.zeros((C,), np.float64), be.zeros((C,), np.float64)
    be.batch_norm_stats(be.contiguous(x), mean, var)
    mean, var, M = to_host(mean), to_host(var), N * H * W
    if _sum_over_ranks is not None:  # the global batch's statistics, combined stably from each rank's own
        M_all = int(_sum_over_ranks(np.array([float(M)]))[0])
        mean_all = _sum_over_ranks(M * mean) / M_all
        var = _sum_over_ranks(M * (var + (mean - mean_all) ** 2)) / M_all
        mean, M = mean_all, M_all
    return _normalise(be, x, mean, var, weight, bias, eps, relu, M)


def batch_norm2d_inference(x, running_mean, running_var, weight, bias, eps=1e-5, relu=False):
    """Batch normalisation with given statistics (inference), ``y = x * scale + shift`` per channel; returns
    ``(y, cache)`` as :func:`batch_norm2d`."""
    x = _check(x, weight, bias)
    C = x.shape[1]
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        if tuple(a.shape) != (C,):
            raise ValueError(f"{name} must have shape ({C},), got {tuple(a.shape)}")
    be = backend_for(x, weight, bias)
    mean = to_host(running_mean).astype(np.float64)
    var = to_host(running_var).astype(np.float64)
    return _normalise(be, x, mean, var, weight, bias, eps, relu, 0)


def batch_norm2d_backward(dy, x, weight, cache):
    """Gradients of :func:`batch_norm2d` (or of the inference form) from its ``cache``.

    With xhat = (x - mean) * invstd and g = dy (masked where the fused ReLU clamped): dbias = sum g,
    dweight = sum g * xhat over (N, H, W), and dx = weight * invstd * (g - dbias/M - xhat * dweight/M) with
    batch statistics, ``weight * invstd * g`` with fixed ones.

    Returns
    -------
    dx : array (N, C, H, W); dweight, dbias : arrays (C,)
    """
    dy = float_array("dy", dy, 4)
    x = float_array("x", x, 4)
    grad_shape("dy", dy, x.shape)
    same_dtype(("dy", "x", "weight"), (dy, x, weight))
    be = backend_for(dy, x, weight)
    C = x.shape[1]
    dy, x = be.contiguous(dy), be.contiguous(x)
    mean, invstd = be.asarray(cache.mean), be.asarray(cache.invstd)
    dweight, dbias = be.empty((C,), x.dtype), be.empty((C,), x.dtype)
    dx = be.empty(x.shape, x.dtype)
    if not (cache.n_values and _sum_over_ranks is not None):  # the sums and dx in one pass
        be.batch_norm_backward(dy, x, mean, invstd, be.contiguous(weight), cache.scale, cache.shift, cache.relu,
                               cache.n_values, dweight, dbias, dx)
        return dx, dweight, dbias
    # dx needs the sums over the global batch (whose statistics it was normalised with); the parameters'
    # gradients stay this rank's share, which the gradient allreduce averages with the others'
    be.batch_norm_backward_sums(dy, x, mean, invstd, cache.scale, cache.shift, cache.relu, dweight, dbias)
    sw = be.asarray(_sum_over_ranks(to_host(dweight).astype(np.float64)).astype(x.dtype))
    sb = be.asarray(_sum_over_ranks(to_host(dbias).astype(np.float64)).astype(x.dtype))
    be.batch_norm_backward_dx(dy, x, mean, invstd, be.contiguous(weight), cache.scale, cache.shift, cache.relu,
                              cache.n_values, sw, sb, dx)
    return dx, dweight, dbias


def global_avg_pool2d(x):
    """The mean of each plane: (N, C, H, W) -> (N, C, 1, 1)."""
    x = float_array("x", x, 4)
    be = backend_for(x)
    y = be.empty((x.shape[0], x.shape[1], 1, 1), x.dtype)
    return be.global_avg_pool_forward(be.contiguous(x), y)


def global_avg_pool2d_backward(dy, x_shape):
    """Gradient of :func:`global_avg_pool2d`: ``dx[n, c, h, w] = dy[n, c, 0, 0] / (H*W)``."""
    dy = float_array("dy", dy, 4)
    N, C, H, W = x_shape
    grad_shape("dy", dy, (N, C, 1, 1))
    be = backend_for(dy)
    return be.global_avg_pool_backward(be.contiguous(dy), be.empty(tuple(x_shape), dy.dtype))
