"""BatchNorm2D, GlobalAvgPool2D, Residual and ResNet-20: forward against numpy, backward against finite
differences, buffers, checkpoints and the errors."""
import numpy as np
import pytest

from fastconv import checkpoint, nn
from fastconv.models import resnet20
import reference as ref
from helpers import check_network_gradients
from test_nn import _fd_layer


def _bn(C, rng, dtype=np.float64):
    layer = nn.BatchNorm2D(C).to(dtype)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, C)
    layer.bias.data[...] = rng.uniform(-0.5, 0.5, C)
    return layer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_training_forward_and_running_statistics(rng, dtype):
    """Batch statistics (biased variance) normalise; the running ones move by momentum with the unbiased
    variance; num_batches_tracked counts the batches."""
    layer = _bn(3, rng, dtype)
    layer.momentum = 0.3
    x = (rng.standard_normal((4, 3, 5, 6)) * 2 + 1).astype(dtype)
    y = layer(x)
    want, mean, var = ref.batch_norm2d(x.astype(np.float64), layer.weight.data, layer.bias.data)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    M = 4 * 5 * 6
    np.testing.assert_allclose(layer.running_mean, 0.3 * mean, rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.running_var, 0.7 + 0.3 * var * M / (M - 1), rtol=tol, atol=tol)
    assert int(layer.num_batches_tracked) == 1 and layer.num_batches_tracked.dtype == np.int64
    layer(x)
    assert int(layer.num_batches_tracked) == 2


def test_batch_norm_eval_uses_the_running_statistics(rng):
    layer = _bn(2, rng)
    layer.running_mean[...] = [0.5, -1.0]
    layer.running_var[...] = [2.0, 0.25]
    layer.eval()
    x = rng.standard_normal((3, 2, 4, 4))
    want, _, _ = ref.batch_norm2d(x, layer.weight.data, layer.bias.data, mean=layer.running_mean, var=layer.running_var)
    np.testing.assert_allclose(layer(x), want, rtol=1e-12, atol=1e-12)
    assert int(layer.num_batches_tracked) == 0  # eval changes no buffer
    _fd_layer(layer, x, rng)


def test_batch_norm_is_stable_for_large_means(rng):
    """Mean 1e4 against a spread of 1: a one-pass E[x^2] - E[x]^2 in float32 would lose the variance."""
    layer = nn.BatchNorm2D(2)
    x = (1e4 + rng.standard_normal((8, 2, 16, 16))).astype(np.float32)
    y = layer(x)
    want, _, var = ref.batch_norm2d(x.astype(np.float64), layer.weight.data, layer.bias.data)
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-3)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * var * 2048 / 2047, rtol=1e-4)


@pytest.mark.parametrize("relu", [False, True], ids=["plain", "fused-relu"])
def test_batch_norm_training_gradients_match_finite_differences(rng, relu):
    layer = _bn(3, rng)
    x = rng.standard_normal((2, 3, 4, 5))
    if relu:  # BatchNorm2D then ReLU, fused by Sequential (inputs kept away from the kink)
        net = nn.Sequential(layer, nn.ReLU()).set_input_grad(True)
        _fd_layer(net, x, rng)
        assert net._bn_relu == {0}
    else:
        _fd_layer(layer, x, rng)


def test_global_avg_pool_matches_numpy_and_finite_differences(rng):
    layer = nn.GlobalAvgPool2D()
    x = rng.standard_normal((3, 4, 5, 2))
    np.testing.assert_allclose(layer(x), ref.global_avg_pool2d(x), rtol=1e-12)
    _fd_layer(layer, x, rng)


@pytest.mark.parametrize("shortcut", [False, True], ids=["identity", "projection"])
def test_residual_forward_and_gradients(rng, shortcut):
    body = nn.Sequential(nn.Conv2D(3, 4 if shortcut else 3, 3, padding=1), nn.Tanh())
    sc = nn.Sequential(nn.Conv2D(3, 4, 1)) if shortcut else None
    block = nn.Residual(body, sc).to(np.float64)
    x = rng.standard_normal((2, 3, 5, 5))
    want = body(x) + (sc(x) if shortcut else x)
    np.testing.assert_allclose(block(x), want, rtol=1e-12)
    _fd_layer(block, x, rng)
    keys = list(block.state_dict())
    assert keys[:2] == ["body.0.weight", "body.0.bias"] and (("shortcut.0.weight" in keys) == shortcut)


def test_residual_with_batch_norm_whole_network_gradient_check():
    """A small residual network with BatchNorm in training mode: every parameter and the input against finite
    differences of the loss, float64."""
    nn.manual_seed(3)
    block = nn.Residual(nn.Sequential(nn.Conv2D(2, 4, 3, stride=2, padding=1, bias=False), nn.BatchNorm2D(4), nn.ReLU(),
                                      nn.Conv2D(4, 4, 3, padding=1, bias=False), nn.BatchNorm2D(4)),
                        nn.Sequential(nn.Conv2D(2, 4, 1, stride=2, bias=False), nn.BatchNorm2D(4)))
    m = nn.Sequential(nn.Conv2D(1, 2, 3, padding=1), nn.BatchNorm2D(2), nn.ReLU(), nn.Sequential(block, nn.ReLU()),
                      nn.GlobalAvgPool2D(), nn.Flatten(), nn.Linear(4, 3)).to(np.float64)
    rng = np.random.default_rng(4)
    check_network_gradients(m, rng.standard_normal((3, 1, 6, 6)), np.array([0, 2, 1]), rng, 6)


def test_resnet20_structure_and_state_dict():
    m = resnet20()
    keys = list(m.state_dict())
    assert keys[:6] == ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert "3.0.body.1.running_mean" in keys and "6.0.shortcut.0.weight" in keys and "4.0.shortcut.0.weight" not in keys
    assert keys[-2:] == ["14.weight", "14.bias"]
    assert sum(p.data.size for p in m.parameters()) == 272474  # 0.27 M, as in He et al.
    assert all(p.data.ndim for p in m.parameters()) and len(m.parameters()) == 65
    y = m(np.zeros((2, 3, 32, 32), np.float32))
    assert y.shape == (2, 10)


def test_buffers_are_state_not_parameters(rng):
    m = nn.Sequential(nn.Conv2D(1, 2, 3), nn.BatchNorm2D(2))
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [n for n, _ in m.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    m.to(np.float64)
    assert m[1].running_mean.dtype == np.float64 and m[1].num_batches_tracked.dtype == np.int64
    sd = m.state_dict()
    sd["1.running_var"] = np.full(2, 3.0)
    m2 = nn.Sequential(nn.Conv2D(1, 2, 3), nn.BatchNorm2D(2))
    m2.load_state_dict(sd)
    np.testing.assert_array_equal(m2[1].running_var, [3.0, 3.0])
    assert m2[1].running_var.dtype == np.float32
    from fastconv.optim import SGD

    assert len(SGD(m.parameters(), 0.1).params) == 4  # optimizers see the parameters only


def test_resnet20_checkpoint_resume_is_identical(tmp_path, rng):
    """Save after two SGD steps, load, take two more steps in both: identical parameters and buffers."""
    from fastconv.optim import SGD

    nn.manual_seed(0)
    m = resnet20(num_classes=10, in_channels=1)
    opt = SGD(m.parameters(), 0.05, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    x = rng.standard_normal((8, 1, 12, 12)).astype(np.float32)
    y = np.arange(8) % 10

    def step(model, o):
        model.zero_grad()
        crit(model(x), y)
        model.backward(crit.backward())
        o.step()

    step(m, opt), step(m, opt)
    checkpoint.save(tmp_path / "c.npz", m, opt, {"epoch": 0, "batch": 2})
    ck = checkpoint.load(tmp_path / "c.npz")
    m2, opt2 = ck.model, ck.optimizer
    assert list(m2.state_dict()) == list(m.state_dict())
    step(m, opt), step(m, opt), step(m2, opt2), step(m2, opt2)
    for (k, a), b in zip(m.state_dict().items(), m2.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_bad_batch_norm_and_residual_input_is_named():
    with pytest.raises(ValueError, match=r"BatchNorm2D\(3\) needs input \(N, 3, H, W\), got shape \(2, 4, 5, 5\)"):
        nn.BatchNorm2D(3)(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm2D(3)(np.zeros((1, 3, 1, 1), np.float32))
    nn.BatchNorm2D(3).eval()(np.zeros((1, 3, 1, 1), np.float32))  # fine with running statistics
    with pytest.raises(ValueError, match="num_features must be >= 1"):
        nn.BatchNorm2D(0)
    block = nn.Residual(nn.Conv2D(2, 3, 3, padding=1))
    with pytest.raises(ValueError, match=r"body returns shape \(1, 3, 4, 4\) but the input has shape \(1, 2, 4, 4\)"):
        block(np.zeros((1, 2, 4, 4), np.float32))
    block = nn.Residual(nn.Conv2D(2, 3, 3, padding=1), nn.Conv2D(2, 3, 1, stride=2))
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 4\) but the shortcut has shape \(1, 3, 2, 2\)"):
        block(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(TypeError, match="must be a Module"):
        nn.Residual(nn.ReLU(), "not a module")


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_eval_mode_folds_batch_norm_into_the_conv_exactly_enough(rng, relu, bias):
    """In eval mode a Conv2D + BatchNorm2D (+ ReLU) runs as one folded convolution: the same outputs as the
    layers one by one (float64, to rounding), and a backward pass after it gives the same gradients."""
    def net():
        nn.manual_seed(4)
        layers = [nn.Conv2D(3, 5, 3, padding=1, bias=bias, dtype=np.float64), nn.BatchNorm2D(5, dtype=np.float64)]
        return nn.Sequential(*layers, *([nn.ReLU()] if relu else []), nn.Conv2D(5, 2, 1, dtype=np.float64)).set_input_grad(True)

    folded, plain = net(), net()
    x = rng.standard_normal((4, 3, 6, 6))
    for m in (folded, plain):  # running statistics away from their start
        m.train()
        m(x * 2 + 1)
        m.eval()
    y = folded(x)
    assert folded._folded == {1}
    layer_by_layer = x
    for m in plain:
        layer_by_layer = m(layer_by_layer)
    np.testing.assert_allclose(y, layer_by_layer, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = folded.backward(dy)
    g = dy
    for m in reversed(list(plain)):
        g = m.backward(g)
    np.testing.assert_allclose(dx, g, rtol=1e-12, atol=1e-12)
    for (k, p), q in zip(folded.named_parameters(), plain.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-12, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("fixed", [False, True], ids=["batch", "fixed"])
def test_batch_norm_backward_in_one_pass_equals_the_two_kernels(rng, relu, fixed):
    """The one-pass backward (sums, then dx, channel by channel) gives the two kernels' results exactly (they
    stay for data-parallel training, where the sums are added over the ranks in between), and both follow
    the equations: dx = w / std * (g - mean(g) - xhat * mean(g * xhat)) with batch statistics."""
    from fastconv.kernels.cpu import plan

    N, C, H, W = 3, 5, 7, 6
    x = (rng.standard_normal((N, C, H, W)) * 3 + 2).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    w = rng.uniform(0.5, 1.5, C).astype(np.float32)
    mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
    invstd = 1 / np.sqrt(x.var(axis=(0, 2, 3), dtype=np.float64) + 1e-5)
    scale = (w * invstd).astype(np.float32)
    shift = (rng.uniform(-0.5, 0.5, C) - mean * scale).astype(np.float32)
    M = 0 if fixed else N * H * W
    outs = []
    for fused in (True, False):
        dw, db, dx = np.empty(C, np.float32), np.empty(C, np.float32), np.empty_like(x)
        if fused:
            plan.batch_norm_backward(dy, x, mean, invstd, w, scale, shift, relu, M, dw, db, dx)
        else:
            plan.batch_norm_backward_sums(dy, x, mean, invstd, scale, shift, relu, dw, db)
            plan.batch_norm_backward_dx(dy, x, mean, invstd, w, scale, shift, relu, M, dw, db, dx)
        outs.append((dx, dw, db))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    c = (slice(None), None, None)
    xhat = (x - mean[c]) * invstd[c]
    g = np.where(x * scale[c] + shift[c] > 0, dy, 0) if relu else dy.astype(np.float64)
    sg, sgx = g.sum(axis=(0, 2, 3)), (g * xhat).sum(axis=(0, 2, 3))
    want = (w * invstd)[c] * (g - (0 if fixed else (sg[c] + xhat * sgx[c]) / M))
    np.testing.assert_allclose(outs[0][0], want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outs[0][1], sgx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outs[0][2], sg, rtol=1e-4, atol=1e-4)
