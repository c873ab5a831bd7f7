"""Layers, losses and whole networks: forward against numpy, backward against finite differences."""
import numpy as np
import pytest

import fastconv as fc
import fastconv.nn as nn
from fastconv.models import lenet5
from helpers import assert_close_fd, check_network_gradients
from reference import numeric_grad


def _fd_layer(layer, x, rng):
    """Check a layer's dx and every parameter grad against finite differences of sum(layer(x) * dy)."""
    dy = rng.standard_normal(layer(x).shape)
    layer.zero_grad()
    layer(x)
    dx = layer.backward(dy)
    assert_close_fd(dx, numeric_grad(lambda t: layer(t), x, dy))
    for name, p in layer.named_parameters():
        def f(t, p=p):
            old, p.data = p.data, t
            try:
                return layer(x)
            finally:
                p.data = old
        assert_close_fd(p.grad, numeric_grad(f, p.data, dy))


def test_linear_matches_numpy_and_finite_differences(rng):
    layer = nn.Linear(5, 3, rng=rng).to(np.float64)
    x = rng.standard_normal((4, 5))
    np.testing.assert_allclose(layer(x), x @ layer.weight.data.T + layer.bias.data, rtol=1e-12)
    _fd_layer(layer, x, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, I, O", [(1, 1, 1), (7, 5, 33), (9, 33, 31), (64, 400, 120), (17, 40, 64)])
def test_linear_ops_against_numpy_at_block_edges(rng, N, I, O, dtype):
    """Sizes below, at and across the micro-kernel's blocks (rows, columns and the last column block)."""
    x = rng.standard_normal((N, I)).astype(dtype)
    w = rng.standard_normal((O, I)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    dy = rng.standard_normal((N, O)).astype(dtype)
    t = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fc.linear(x, w, b), x.astype(np.float64) @ w.T + b, **t)
    np.testing.assert_allclose(fc.linear_backward_input(dy, w), dy.astype(np.float64) @ w, **t)
    np.testing.assert_allclose(fc.linear_backward_weight(dy, x), dy.T.astype(np.float64) @ x, **t)


@pytest.mark.parametrize(
    "layer",
    [
        lambda: nn.Conv2D(2, 3, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2)),
        lambda: nn.Conv2D(2, 3, 3, bias=False),
        lambda: nn.Tanh(),
        lambda: nn.Sigmoid(),
        lambda: nn.AvgPool2D(3, 2, 1),
        lambda: nn.Flatten(),
    ],
)
def test_layer_gradients(rng, layer):
    nn.manual_seed(0)
    _fd_layer(layer().to(np.float64), rng.standard_normal((2, 2, 6, 7)), rng)


def test_activations_match_numpy(rng):
    x = rng.standard_normal((3, 7))
    np.testing.assert_allclose(nn.Tanh()(x), np.tanh(x), rtol=1e-12)
    np.testing.assert_allclose(nn.Sigmoid()(x), 1 / (1 + np.exp(-x)), rtol=1e-12)
    big = np.array([[-1000.0, 1000.0]])
    assert np.array_equal(nn.Sigmoid()(big), [[0.0, 1.0]])


def test_max_pool_and_relu_layers(rng):
    x = rng.permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6).astype(np.float64) - 49.5  # distinct, away from 0
    for layer in (nn.MaxPool2D(2), nn.MaxPool2D(3, 2, 1), nn.ReLU()):
        _fd_layer(layer, x, rng)


def test_dropout_train_and_eval(rng):
    d = nn.Dropout(0.25, rng=np.random.default_rng(0))
    x = np.ones((200, 100), np.float32)
    y = d(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(d.backward(x), y)  # the same mask routes the gradient
    d.eval()
    assert d(x) is x and d.backward(x) is x
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.0)


def test_cross_entropy_matches_formula_and_is_stable(rng):
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    crit = nn.CrossEntropyLoss()
    loss = crit(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(5), labels])), rel=1e-12)
    assert_close_fd(crit.backward(), numeric_grad(lambda t: np.array(crit(t, labels)), logits, np.array(1.0)))
    huge = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], np.float32)
    loss = crit(huge, [1, 0])
    g = crit.backward()
    assert np.isfinite(loss) and loss == pytest.approx((2e4 + 2e4 + np.log(2)) / 2, rel=1e-6)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[0.5, -0.5, 0], [-0.5, 0.25, 0.25]], atol=1e-6)


@pytest.mark.parametrize(
    "labels, exc, word",
    [([0, 5], ValueError, "[0, 3)"), ([0.0, np.nan], ValueError, "NaN"), ([0.5, 1.0], ValueError, "whole"),
     ([0], ValueError, "shape (2,)"), (np.array(["a", "b"]), TypeError, "dtype"), ("ab", TypeError, "str")],
)
def test_cross_entropy_rejects_bad_labels(labels, exc, word):
    with pytest.raises(exc, match="labels") as info:
        nn.CrossEntropyLoss()(np.zeros((2, 3)), labels)
    assert word in str(info.value)


def test_mse_loss(rng):
    y, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for red, scale in (("mean", 1 / 12), ("sum", 1.0)):
        crit = nn.MSELoss(red)
        assert crit(y, t) == pytest.approx(np.sum((y - t) ** 2) * scale)
        assert_close_fd(crit.backward(), numeric_grad(lambda a: np.array(crit(a, t)), y, np.array(1.0)))
    # the derivation's E = 1/2 sum (t - y)^2 and its delta y - t
    crit = nn.MSELoss("sum")
    assert 0.5 * crit(y, t) == pytest.approx(0.5 * np.sum((t - y) ** 2))
    np.testing.assert_allclose(0.5 * crit.backward(), y - t)


def test_lenet5_structure_and_names():
    m = lenet5()
    shapes = {k: v.shape for k, v in m.state_dict().items()}
    assert shapes == {
        "0.weight": (6, 1, 5, 5), "0.bias": (6,), "3.weight": (16, 6, 5, 5), "3.bias": (16,),
        "7.weight": (120, 400), "7.bias": (120,), "9.weight": (84, 120), "9.bias": (84,),
        "11.weight": (10, 84), "11.bias": (10,),
    }
    kinds = [type(c).__name__ for c in m]
    assert kinds == ["Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D", "Flatten", "Linear", "ReLU",
                     "Linear", "ReLU", "Linear"]
    assert "Conv2D(1, 6, kernel_size=(5, 5)" in repr(m) and "(11): Linear(in_features=84" in repr(m)
    assert m(np.zeros((3, 1, 28, 28), np.float32)).shape == (3, 10)


def test_lenet5_whole_network_gradient_check():
    """Every parameter's gradient (a sample of entries each) and the input's against finite differences, float64."""
    nn.manual_seed(1)
    rng = np.random.default_rng(2)
    check_network_gradients(lenet5().to(np.float64), rng.standard_normal((2, 1, 28, 28)), np.array([3, 7]), rng, 12)


def test_state_dict_round_trip_and_casting(rng):
    a, b = lenet5(), lenet5()
    b.load_state_dict({k: v.astype(np.float64) for k, v in a.state_dict().items()})
    assert all(p.dtype == np.float32 for p in b.parameters())
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(a(x), b(x))


def test_load_state_dict_mismatch_leaves_the_module_untouched():
    m = lenet5()
    before = m.state_dict()
    bad = dict(before)
    bad["0.weight"] = np.zeros((6, 1, 5, 5))
    bad["11.weight"] = np.zeros((9, 84))  # wrong shape, checked after 0.weight
    with pytest.raises(ValueError, match=r"11.weight.*\(9, 84\).*\(10, 84\)"):
        m.load_state_dict(bad)
    with pytest.raises(ValueError, match="missing keys"):
        m.load_state_dict({k: v for k, v in before.items() if k != "3.bias"})
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_to_dtype_and_bad_targets():
    m = lenet5().to(np.float64)
    assert all(p.dtype == np.float64 for p in m.parameters())
    with pytest.raises(ValueError, match="target"):
        m.to("tpu")
    with pytest.raises(TypeError, match="float32 or float64"):
        m.to(np.int32)


def test_module_train_eval_propagates():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    m.eval()
    assert not m[1][0].training
    m.train()
    assert m[1][0].training
    assert [k for k, _ in m.named_parameters()] == ["0.weight", "0.bias"]


def test_set_input_grad_skips_only_the_first_layers_dx(rng):
    """A network computes no gradient for its input unless asked (by default, as PyTorch does for an input
    that does not require one); the parameters' gradients are the same either way."""
    nn.manual_seed(4)
    a, b = lenet5().set_input_grad(True), lenet5()
    b.load_state_dict(a.state_dict())
    assert not b.input_grad and not b[0].input_grad and b[3].input_grad and a[0].input_grad
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    crit = nn.CrossEntropyLoss()
    for m in (a, b):
        crit(m(x), [1, 2])
        dx = m.backward(crit.backward())
        assert (dx is None) == (m is b)
    for (k, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=k)


@pytest.mark.parametrize("pool", [(2, 2), (3, 1)])
def test_relu_then_max_pool_backward_equals_the_chain(rng, pool):
    """Sequential applies a ReLU's mask to the pooled delta (pooled output > 0) instead of the full-size one;
    the result must equal ReLU backward after MaxPool backward, also with overlapping windows and NaN."""
    x = rng.standard_normal((2, 3, 7, 6))
    x[0, 1, 2, 3] = np.nan
    seq = nn.Sequential(nn.ReLU(), nn.MaxPool2D(*pool)).set_input_grad(True)
    y = seq(x)
    dy = rng.standard_normal(y.shape)
    r = fc.relu(x)
    _, idx = fc.max_pool2d(r, *pool)
    expected = fc.relu_backward(fc.max_pool2d_backward(dy, idx, r.shape), x)
    np.testing.assert_array_equal(seq.backward(dy), expected)
