"""One-line checks: run an op and its reference, compare forward and gradients."""
from collections import namedtuple

import numpy as np
import pytest

import fastconv as fc
from reference import numeric_grad

import reference as ref


ConvShape = namedtuple("ConvShape", "N C K H W R S")


def case(name, shape, *args):
    """A named test case: a conv shape (N, C, K, H, W, R, S) and what goes with it."""
    return pytest.param(ConvShape(*shape), *args, id=name)


def tol(dtype):
    return dict(rtol=2e-4, atol=2e-4) if np.dtype(dtype) == np.float32 else dict(rtol=1e-9, atol=1e-9)


def distinct(rng, shape, dtype=np.float64):
    """Values with no ties (a random permutation), scaled into [-1, 1): max pooling has one winner."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) / n).reshape(shape).astype(dtype)


def check_conv(rng, N, C, K, H, W, R, S, stride, padding, dilation, dtype, bias=True, groups=1):
    """conv2d and its three gradients against the references, in ``dtype``."""
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = fc.conv2d(x, w, b, **kw)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref.conv2d(x, w, b, **kw), **tol(dtype))
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(
        fc.conv2d_backward_input(dy, w, x.shape, **kw), ref.conv2d_backward_input(dy, w, x.shape, **kw), **tol(dtype)
    )
    np.testing.assert_allclose(
        fc.conv2d_backward_weight(dy, x, w.shape, **kw), ref.conv2d_backward_weight(dy, x, w.shape, **kw), **tol(dtype)
    )
    np.testing.assert_allclose(fc.conv2d_backward_bias(dy), ref.conv2d_backward_bias(dy), **tol(dtype))


def check_conv_fd(rng, N, C, K, H, W, R, S, **kw):
    """Every conv gradient against central finite differences of sum(conv2d(x, w, b) * dy), float64."""
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C // kw.get("groups", 1), R, S))
    b = rng.standard_normal(K)
    dy = rng.standard_normal(fc.conv2d(x, w, b, **kw).shape)
    assert_close_fd(fc.conv2d_backward_input(dy, w, x.shape, **kw), numeric_grad(lambda t: fc.conv2d(t, w, b, **kw), x, dy))
    assert_close_fd(fc.conv2d_backward_weight(dy, x, w.shape, **kw), numeric_grad(lambda t: fc.conv2d(x, t, b, **kw), w, dy))
    assert_close_fd(fc.conv2d_backward_bias(dy), numeric_grad(lambda t: fc.conv2d(x, w, t, **kw), b, dy))


def check_network_gradients(m, x, labels, rng, samples):
    """A float64 network's gradient of its cross-entropy loss, for ``samples`` random entries of every
    parameter and of the input, against central finite differences of the loss."""
    import pytest

    from fastconv import nn

    crit = nn.CrossEntropyLoss()
    m.set_input_grad(True)
    m.zero_grad()
    crit(m(x), labels)
    dx = m.backward(crit.backward())
    eps = 1e-6

    def loss_at(arr, i, v):
        old = arr.flat[i]
        arr.flat[i] = v
        out = crit(m(x), labels)
        arr.flat[i] = old
        return out

    for name, p in list(m.named_parameters()) + [("x", None)]:
        arr, grad = (x, dx) if p is None else (p.data, p.grad)
        for i in rng.choice(arr.size, size=min(arr.size, samples), replace=False):
            num = (loss_at(arr, i, arr.flat[i] + eps) - loss_at(arr, i, arr.flat[i] - eps)) / (2 * eps)
            assert grad.flat[i] == pytest.approx(num, rel=1e-5, abs=1e-8), f"{name}[{i}]"


def assert_close_fd(analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)
