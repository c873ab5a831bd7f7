"""A peer's test cases: the 2-D convolution and pooling cases of tinygrad's operator tests (test/test_ops.py),
re-expressed with fastconv and compared with PyTorch (forward, and the gradients of the output's sum with
respect to every input) at the tolerances tinygrad uses for them. The inputs are drawn as tinygrad draws
them: uniform in [-2, 2) from numpy's seed 0, one array per shape in order. The deliberately invalid cases
(negative padding, integer input, a three-element padding) must raise a clear error instead. Skipped
without PyTorch."""
import numpy as np
import pytest

import fastconv as fc

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = dict(atol=1e-6, rtol=1e-3, grad_atol=1e-4, grad_rtol=1e-3)  # tinygrad's defaults


def _inputs(shapes):
    np.random.seed(0)
    return [np.random.uniform(-2, 2, size=s).astype(np.float32) for s in shapes]


def _torch(fn, arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    return out.detach().numpy(), [g.numpy() for g in torch.autograd.grad(out.sum(), ts)]


def _compare(ours, theirs, tol):
    tol = {**TOL, **tol}
    np.testing.assert_allclose(ours[0], theirs[0], atol=tol["atol"], rtol=tol["rtol"])
    for i, (a, b) in enumerate(zip(ours[1], theirs[1])):
        np.testing.assert_allclose(a, b, atol=tol["grad_atol"], rtol=tol["grad_rtol"], err_msg=f"gradient {i}")


def _sides(p):
    """PyTorch's pad order (left, right, top, bottom) as fastconv's ((top, bottom), (left, right))."""
    return ((p[2], p[3]), (p[0], p[1]))


def _conv(x, w, b=None, **kw):
    """conv2d and the gradients of sum(conv2d) with respect to x, w (and b)."""
    y = fc.conv2d(x, w, b, **kw)
    dy = np.ones_like(y)
    grads = [fc.conv2d_backward_input(dy, w, x.shape, **kw), fc.conv2d_backward_weight(dy, x, w.shape, **kw)]
    return y, grads + ([fc.conv2d_backward_bias(dy)] if b is not None else [])


def _conv_cases():
    def c(name, shapes, kw=None, torch_kw=None, tol=None, pad=None):
        return pytest.param(shapes, kw or {}, torch_kw if torch_kw is not None else (kw or {}), tol or {}, pad, id=name)

    g5 = dict(grad_rtol=1e-5)
    yield c("simple", [(1, 4, 9, 9), (4, 4, 3, 3)], tol=g5)
    yield c("simple-bias", [(1, 4, 9, 9), (4, 4, 3, 3), (4,)], tol=g5)
    yield c("simple-m4", [(1, 16, 9, 9), (16, 16, 3, 3)], tol=dict(atol=1e-5, grad_rtol=1e-5))
    yield c("simple-1x1", [(1, 4, 9, 9), (4, 4, 1, 1)], tol=g5)
    yield c("simple-1x1-m4", [(1, 16, 32, 32), (16, 16, 1, 1)], tol=g5)
    yield c("nhwc-as-nchw", [(2, 10, 9, 9), (20, 10, 3, 3)], tol=dict(atol=1e-5, grad_rtol=1e-5))
    yield c("batched", [(2, 4, 9, 9), (4, 4, 3, 3)], tol=g5)
    for bs, cin, cout in ((1, 3, 6), (4, 3, 2), (1, 1, 6), (4, 1, 6)):
        for H in (2, 3):
            for W in (1, 3, 5):
                for g in ((1, 3) if cin == 3 and cout == 6 and H == 3 and W == 3 else (1,)):
                    yield c(f"conv2d-bs{bs}-cin{cin}-cout{cout}-{H}x{W}-g{g}", [(bs, cin, 5, 7), (cout, cin // g, H, W)],
                            dict(groups=g), tol=g5)
    yield c("large-input", [(4, 16, 64, 64), (6, 16, 5, 2)], tol=dict(atol=1e-4, grad_atol=3e-4, grad_rtol=1e-4))
    for name, x, w, g in (("simple-grouped", (1, 4, 1, 1), (2, 2, 1, 1), 2), ("medium-grouped", (1, 4, 1, 1), (4, 2, 1, 1), 2),
                          ("depthwise", (1, 32, 32, 32), (32, 1, 1, 1), 32), ("grouped", (4, 15, 5, 5), (35, 3, 3, 3), 5),
                          ("fancy-grouped", (2, 3, 11, 28), (3, 1, 3, 3), 3)):
        yield c(name, [x, w], dict(groups=g), tol=g5)
    yield c("strided-simple", [(2, 1, 5, 1), (1, 1, 3, 1)], dict(stride=2))
    yield c("strided-2", [(4, 3, 11, 28), (4, 3, 3, 3)], dict(stride=2))
    yield c("strided-2-1", [(4, 3, 11, 28), (4, 3, 3, 3)], dict(stride=(2, 1)))
    for p in ((0, 1, 0, 1), (2, 1, 2, 1), (2, 0, 2, 1)):
        for n in (3, 4):
            for repeat in (1, 2):  # (tinygrad runs each twice)
                yield c(f"asymmetric-{''.join(map(str, p))}-n{n}-{repeat}", [(1, 1, n, n), (1, 1, 2, 2)],
                        dict(padding=_sides(p)), {}, pad=p)
    for name, shapes, padding in (("padded-p21", [(4, 3, 11, 28), (4, 3, 3, 3)], (2, 1)),
                                  ("padded-p22", [(4, 3, 11, 28), (4, 3, 3, 3)], (2, 2)),
                                  ("padded-1x1", [(4, 3, 11, 28), (4, 3, 1, 1)], 2),
                                  ("padded-bs1", [(1, 3, 11, 28), (4, 3, 3, 3)], 1)):
        yield c(name, shapes, dict(padding=padding))
    for d in (2, (2, 1)):
        yield c(f"dilated-{d}", [(4, 3, 11, 28), (4, 3, 3, 3)], dict(dilation=d))


@pytest.mark.parametrize("shapes, kw, torch_kw, tol, pad", list(_conv_cases()))
def test_tinygrad_conv_cases(shapes, kw, torch_kw, tol, pad):
    arrays = _inputs(shapes)
    theirs = _torch(lambda x, w, *b: F.conv2d(F.pad(x, pad) if pad else x, w, *b, **torch_kw), arrays)
    _compare(_conv(*arrays, **kw), theirs, tol)


def test_tinygrad_padded_pair_case():
    """Their hand-written values: [[2, 3]] against a 1x1 kernel of 1, padded by one on every side."""
    x, w = np.array([[[[2.0, 3.0]]]], np.float32), np.array([[[[1.0]]]], np.float32)
    _compare(_conv(x, w, padding=1), _torch(lambda a, b: F.conv2d(F.pad(a, (1, 1, 1, 1)), b), [x, w]), {})


@pytest.mark.parametrize("share", [True, False], ids=["biased-twice", "nested"])
def test_tinygrad_chained_conv_cases(share):
    """conv(relu(conv(x, w1, b)), w2, b): the same 1x1 kernel and bias twice (C = 8), or two 3x3 kernels."""
    if share:
        x, w, b = _inputs([(1, 8, 5, 5), (8, 8, 1, 1), (8,)])
        ws, bs = (w, w), (b, b)
    else:
        x, w1, w2 = _inputs([(1, 32, 9, 9), (32, 32, 3, 3), (32, 32, 3, 3)])
        ws, bs = (w1, w2), (None, None)
    y1 = fc.conv2d(x, ws[0], bs[0])
    a = fc.relu(y1)
    y2 = fc.conv2d(a, ws[1], bs[1])
    dy2 = np.ones_like(y2)
    dy1 = fc.relu_backward(fc.conv2d_backward_input(dy2, ws[1], a.shape), y1)
    dw = [fc.conv2d_backward_weight(dy1, x, ws[0].shape), fc.conv2d_backward_weight(dy2, a, ws[1].shape)]
    dx = fc.conv2d_backward_input(dy1, ws[0], x.shape)
    if share:
        ours = (y2, [dx, dw[0] + dw[1], fc.conv2d_backward_bias(dy1) + fc.conv2d_backward_bias(dy2)])
        theirs = _torch(lambda x_, w_, b_: F.conv2d(F.conv2d(x_, w_, b_).relu(), w_, b_), [x, w, b])
    else:
        ours = (y2, [dx, dw[0], dw[1]])
        theirs = _torch(lambda x_, a_, b_: F.conv2d(F.conv2d(x_, a_).relu(), b_), [x, w1, w2])
    _compare(ours, theirs, {})


def _pool_cases():
    def c(name, kind, shape, kw, tol=None, pad=None):
        return pytest.param(kind, shape, kw, tol or {}, pad, id=f"{kind}-{name}")

    big, small = (4, 2, 11, 28), (3, 2, 17, 14)
    yield c("simple", "max", (1, 1, 2, 3), dict(kernel_size=(2, 2)))
    for k in ((2, 2), (3, 3), 2, 3, (3, 2), (5, 5), (5, 1)):
        yield c(f"k{k}", "max", (32, 2, 11, 28), dict(kernel_size=k))
    for kind, shape, tol in (("max", big, None), ("avg", (32, 2, 11, 28), dict(rtol=1e-5))):
        for k in ((2, 2), (3, 3), 2, 3, (3, 2)):
            for p in (1, (1, 0), (0, 1)):
                yield c(f"k{k}-p{p}", kind, shape, dict(kernel_size=k, padding=p), tol)
    for p in ((0, 1, 0, 1), (2, 1, 2, 1), (2, 0, 2, 1)):
        yield c(f"asymmetric-{''.join(map(str, p))}", "max", (4, 2, 111, 28), dict(kernel_size=(5, 5), padding=_sides(p)), pad=p)
        yield c(f"asymmetric-case-{''.join(map(str, p))}", "avg", (32, 2, 11, 28), dict(kernel_size=(5, 5), padding=1),
                dict(rtol=1e-5))  # (tinygrad's own case pools with padding 1 on both sides)
    for s in ((2, 3), (3, 2), 2, 3):
        yield c(f"bigger-stride-{s}", "max", big, dict(kernel_size=(2, 2), stride=s))
    for s, d in zip(((2, 3), (3, 2), 2, 3, 4), ((3, 2), (2, 3), 2, 3, 6)):
        yield c(f"stride-{s}-dilation-{d}", "max", big, dict(kernel_size=(2, 2), stride=s, dilation=d))
    yield c("unit-stride", "max", small, dict(kernel_size=(5, 5), stride=1))
    for s in ((2, 3), (3, 2), 2, 3):
        yield c(f"smaller-stride-{s}", "max", small, dict(kernel_size=(5, 5), stride=s))
    for d in ((2, 3), (3, 2), 2, 3):
        yield c(f"dilation-{d}", "max", small, dict(kernel_size=(5, 5), dilation=d))
    for kind, extra in (("max", {}), ("avg", {}), ("avg", dict(count_include_pad=False))):
        for k in ((3, 3), 3, (3, 2), 4):
            name = f"ceil-k{k}" + ("-not-counted" if extra else "")
            yield c(name, kind, (1, 1, 6, 6), dict(kernel_size=k, padding=1, stride=3, ceil_mode=True, **extra), dict(rtol=1e-5))
    yield c("ceil-drops-last-window", "max", (1, 1, 5, 5), dict(kernel_size=(3, 3), stride=3, padding=1, ceil_mode=True))
    for include in (None, True):
        extra = {} if include is None else dict(count_include_pad=True)
        yield c(f"ceil-drops-last-window-{include}", "avg", (1, 1, 5, 5),
                dict(kernel_size=(3, 3), stride=3, padding=1, ceil_mode=True, **extra))
    for k in ((2, 2), (3, 3), (3, 2), (5, 5), (5, 1)):
        yield c(f"k{k}", "avg", (32, 2, 11, 28), dict(kernel_size=k), dict(rtol=1e-5))
    yield c("regression-k1x2-p0x1-s5x1", "avg", (1, 1, 8, 8), dict(kernel_size=(1, 2), padding=(0, 1), stride=(5, 1)), dict(rtol=1e-5))
    for k in ((2, 2), (3, 3), 2, 3, (3, 2)):
        yield c(f"not-counted-k{k}", "avg", (32, 2, 11, 28), dict(kernel_size=k, padding=1, count_include_pad=False), dict(rtol=1e-5))
    yield c("global", "avg", (32, 2, 11, 28), dict(kernel_size=(11, 28)), dict(rtol=1e-5))


@pytest.mark.parametrize("kind, shape, kw, tol, pad", list(_pool_cases()))
def test_tinygrad_pool_cases(kind, shape, kw, tol, pad):
    (x,) = _inputs([shape])
    if kind == "max":
        y, idx = fc.max_pool2d(x, **kw)
        ours = (y, [fc.max_pool2d_backward(np.ones_like(y), idx, x.shape)])
        tkw = {k: v for k, v in kw.items() if k != "padding" or pad is None}
        theirs = _torch(lambda t: F.max_pool2d(F.pad(t, pad, value=float("-inf")) if pad else t, **tkw), [x])
    else:
        y = fc.avg_pool2d(x, **kw)
        ours = (y, [fc.avg_pool2d_backward(np.ones_like(y), x.shape, **kw)])
        theirs = _torch(lambda t: F.avg_pool2d(t, **kw), [x])
    _compare(ours, theirs, tol)


@pytest.mark.parametrize("shape, kw", [
    pytest.param((2, 3, 6, 6), dict(kernel_size=(2, 2)), id="batch-and-channels"),
    pytest.param((1, 1, 10, 10), dict(kernel_size=(3, 2), dilation=(2, 3)), id="dilated"),
    pytest.param((1, 1, 5, 5), dict(kernel_size=(3, 3), padding=1), id="padded"),
    pytest.param((1, 1, 7, 7), dict(kernel_size=(2, 2), stride=(2, 2), ceil_mode=True), id="ceil"),
    pytest.param((1, 1, 12, 13), dict(kernel_size=(12, 13)), id="global"),
])
def test_tinygrad_max_pool_indices(shape, kw):
    """The winners' flat indices, as PyTorch's return_indices gives them (tinygrad's index cases)."""
    (x,) = _inputs([shape])
    _, idx = fc.max_pool2d(x, **kw)
    _, tidx = F.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(idx, tidx.numpy())


@pytest.mark.parametrize("vals, kw", [
    pytest.param(np.ones((1, 1, 6, 6), np.float32), dict(kernel_size=(3, 3), stride=1), id="all-equal"),
    pytest.param(np.tile(np.array([1.0, 2.0], np.float32), (1, 1, 6, 3)), dict(kernel_size=(2, 2), stride=1), id="overlapping"),
])
def test_tinygrad_max_pool_indices_with_ties(vals, kw):
    """Ties go to the first of a window's largest values, in PyTorch's scan order."""
    _, idx = fc.max_pool2d(vals, **kw)
    _, tidx = F.max_pool2d(torch.tensor(vals), return_indices=True, **kw)
    np.testing.assert_array_equal(idx, tidx.numpy())


@pytest.mark.parametrize("call, exc, word", [
    pytest.param(lambda: fc.conv2d(np.zeros((1, 1, 6, 7), np.float32), np.zeros((6, 1, 3, 3), np.float32), dilation=3), ValueError,
                 "does not fit", id="dilated-kernel-too-large"),
    pytest.param(lambda: fc.conv2d(np.zeros((2, 16, 2, 2), np.float32), np.zeros((32, 16, 3, 3), np.float32)), ValueError,
                 "does not fit", id="kernel-larger-than-input"),
    pytest.param(lambda: fc.conv2d(np.zeros((2, 16, 2, 2), np.float32), np.zeros((32, 16, 3, 3), np.float32), padding=(1, 1, 1)),
                 ValueError, "padding", id="conv-three-element-padding"),
    pytest.param(lambda: fc.conv2d(np.zeros((1, 1, 10, 10), np.float32), np.zeros((1, 1, 3, 3), np.float32), padding=-1), ValueError,
                 "padding must be >= 0", id="negative-padding"),
    pytest.param(lambda: fc.conv2d(np.zeros((1, 1, 10, 10), np.float32), np.zeros((1, 1, 3, 3), np.float32),
                                   padding=((-1, 0), (-1, 0))), ValueError, "padding must be >= 0", id="negative-per-side-padding"),
    pytest.param(lambda: fc.max_pool2d(np.zeros((4, 2, 11, 28), np.int32), (2, 2), padding=1), TypeError, "dtype",
                 id="integer-input"),
    pytest.param(lambda: fc.max_pool2d(np.zeros((4, 2, 110, 28), np.float32), (2, 2), padding=(1, 1, 1)), ValueError, "padding",
                 id="max-three-element-padding"),
    pytest.param(lambda: fc.avg_pool2d(np.zeros((32, 2, 11, 28), np.float32), (2, 2), padding=(1, 1, 1)), ValueError, "padding",
                 id="avg-three-element-padding"),
])
def test_tinygrad_invalid_cases_raise_clear_errors(call, exc, word):
    with pytest.raises(exc) as info:
        call()
    assert word in str(info.value)
