"""Optimizer steps against closed-form updates written from PyTorch's documented rules."""
import numpy as np
import pytest

import fastconv.nn as nn
from fastconv.optim import SGD, Adam


def _param(rng, dtype=np.float64):
    p = nn.Parameter(rng.standard_normal(7).astype(dtype))
    return p


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True), dict(momentum=0.5, weight_decay=0.1),
     dict(weight_decay=0.01), dict(momentum=0.9, dampening=0.3)],
)
def test_sgd_matches_closed_form(rng, kw):
    p = _param(rng)
    w = p.data.copy()
    opt = SGD([p], lr=0.1, **kw)
    mom, wd, damp = kw.get("momentum", 0), kw.get("weight_decay", 0), kw.get("dampening", 0)
    buf = None
    for _ in range(4):
        g = rng.standard_normal(7)
        p.grad = g.copy()
        opt.step()
        d = g + wd * w
        if mom:
            buf = d if buf is None else mom * buf + (1 - damp) * d
            d = d + mom * buf if kw.get("nesterov") else buf
        w = w - 0.1 * d
        np.testing.assert_allclose(p.data, w, rtol=1e-12)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adam_matches_closed_form(rng, wd):
    p = _param(rng)
    w = p.data.copy()
    opt = Adam([p], lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=wd)
    m = v = np.zeros(7)
    for t in range(1, 5):
        g = rng.standard_normal(7)
        p.grad = g.copy()
        opt.step()
        d = g + wd * w
        m = 0.8 * m + 0.2 * d
        v = 0.9 * v + 0.1 * d * d
        w = w - 0.01 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.9**t)) + 1e-6)
        np.testing.assert_allclose(p.data, w, rtol=1e-12)


def test_float32_parameters_stay_float32(rng):
    p = _param(rng, np.float32)
    p.grad = np.ones(7, np.float32)
    Adam([p]).step()
    SGD([p], 0.1, momentum=0.9).step()
    assert p.data.dtype == np.float32


def test_params_without_grad_are_skipped_and_zero_grad_clears(rng):
    a, b = _param(rng), _param(rng)
    before = b.data.copy()
    a.grad = np.ones(7)
    opt = SGD([a, b], lr=1.0)
    opt.step()
    np.testing.assert_array_equal(b.data, before)
    opt.zero_grad()
    assert a.grad is None


@pytest.mark.parametrize(
    "make, word",
    [(lambda p: SGD(p, lr=-1), "lr"), (lambda p: SGD(p, 0.1, nesterov=True), "nesterov"),
     (lambda p: Adam(p, betas=(1.0, 0.9)), "betas"), (lambda p: SGD([], 0.1), "params")],
)
def test_bad_hyperparameters(rng, make, word):
    with pytest.raises(ValueError, match=word):
        make([_param(rng)])


def test_sgd_trains_a_small_network_below_a_threshold():
    """A few hundred SGD steps on a separable synthetic problem drive the loss under 0.05."""
    nn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 2, 6, 6)).astype(np.float32)
    labels = (x[:, 0, 1:4, 1:4].sum(axis=(1, 2)) > x[:, 1, 2:5, 2:5].sum(axis=(1, 2))).astype(np.int64)
    model = nn.Sequential(nn.Conv2D(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Linear(36, 16), nn.Tanh(), nn.Linear(16, 2))
    crit, opt = nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.05, momentum=0.9)
    first = crit(model(x), labels)
    for step in range(300):
        idx = np.arange(step * 32, step * 32 + 32) % 256
        model.zero_grad()
        crit(model(x[idx]), labels[idx])
        model.backward(crit.backward())
        opt.step()
    final = crit(model(x), labels)
    assert first > 0.5 and final < 0.05, (first, final)
