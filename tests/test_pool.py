"""Max and average pooling (and ReLU) against the references and finite differences."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv as fc
import reference as ref
from helpers import assert_close_fd, distinct, tol
from reference import numeric_grad, out_size

pairs = lambda lo, hi: st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))  # noqa: E731


def _as_pair(v):
    return v if isinstance(v, tuple) else (v, v)


pool_cases = dict(
    N=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(1, 9), W=st.integers(1, 9), k=pairs(1, 4),
    stride=st.one_of(st.none(), pairs(1, 3)), padding=pairs(0, 2),
    dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16),
)


def _valid(H, W, k, stride, padding):
    (kh, kw), (ph, pw) = _as_pair(k), _as_pair(padding)
    sh, sw = _as_pair(k if stride is None else stride)
    return 2 * ph <= kh and 2 * pw <= kw and out_size(H, ph, 1, kh, sh) >= 1 and out_size(W, pw, 1, kw, sw) >= 1


@given(**pool_cases)
def test_max_pool_matches_reference(N, C, H, W, k, stride, padding, dtype, seed):
    assume(_valid(H, W, k, stride, padding))
    rng = np.random.default_rng(seed)
    x = distinct(rng, (N, C, H, W), dtype)
    y, idx = fc.max_pool2d(x, k, stride, padding)
    y_ref, idx_ref = ref.max_pool2d(x, k, stride, padding)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    assert idx.dtype == np.int64
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(fc.max_pool2d_backward(dy, idx, x.shape), ref.max_pool2d_backward(dy, idx_ref, x.shape), **tol(dtype))


@given(**pool_cases)
def test_avg_pool_matches_reference(N, C, H, W, k, stride, padding, dtype, seed):
    assume(_valid(H, W, k, stride, padding))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    y = fc.avg_pool2d(x, k, stride, padding)
    np.testing.assert_allclose(y, ref.avg_pool2d(x, k, stride, padding), **tol(dtype))
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(
        fc.avg_pool2d_backward(dy, x.shape, k, stride, padding), ref.avg_pool2d_backward(dy, x.shape, k, stride, padding), **tol(dtype)
    )


@pytest.mark.parametrize(
    "k, stride, padding",
    [(2, None, 0), (3, 2, 1), (3, 1, 0), ((3, 2), (1, 2), (1, 1)), (4, 2, 2)],  # overlapping windows and padding
)
def test_pool_gradients_match_finite_differences(rng, k, stride, padding):
    x = distinct(rng, (2, 2, 7, 6))
    y, idx = fc.max_pool2d(x, k, stride, padding)
    dy = rng.standard_normal(y.shape)
    # eps well below the gap between distinct values keeps every winner in place
    num = numeric_grad(lambda t: fc.max_pool2d(t, k, stride, padding)[0], x, dy, eps=1e-7)
    assert_close_fd(fc.max_pool2d_backward(dy, idx, x.shape), num)
    dy = rng.standard_normal(fc.avg_pool2d(x, k, stride, padding).shape)
    num = numeric_grad(lambda t: fc.avg_pool2d(t, k, stride, padding), x, dy)
    assert_close_fd(fc.avg_pool2d_backward(dy, x.shape, k, stride, padding), num)


def test_overlapping_max_pool_accumulates_at_the_shared_winner():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0  # the centre wins all four 2x2 windows of stride 1
    y, idx = fc.max_pool2d(x, 2, 1)
    assert (idx == 4).all() and (y == 5).all()
    dx = fc.max_pool2d_backward(np.arange(1.0, 5.0).reshape(1, 1, 2, 2), idx, x.shape)
    assert dx[0, 0, 1, 1] == 10.0 and dx.sum() == 10.0


@pytest.mark.parametrize("k, stride, padding", [(2, 2, 0), (2, 3, 0), (3, 2, 1)])
def test_cpu_max_pool_backward_writes_every_input(rng, k, stride, padding):
    """The CPU kernel takes an uninitialised dx and zeroes each plane itself: filled with NaN beforehand,
    an input no window picked (stride 3 > kernel 2 leaves whole rows and columns) would show."""
    from fastconv.kernels.cpu.pool import max_pool2d_backward

    x = distinct(rng, (2, 3, 8, 7), np.float64)
    y, idx = fc.max_pool2d(x, k, stride, padding)
    dy = rng.standard_normal(y.shape)
    dx = np.full((2, 3, 8 * 7), np.nan)
    max_pool2d_backward(dy, idx, dx)
    np.testing.assert_array_equal(dx.reshape(x.shape), ref.max_pool2d_backward(dy, idx, x.shape))


@pytest.mark.parametrize("k, stride, padding", [(2, 2, 0), (2, 3, 0), (3, 2, 1)])
def test_cpu_avg_pool_backward_writes_every_input(rng, k, stride, padding):
    """As for max pooling: the CPU kernel zeroes each plane of its uninitialised dx itself."""
    from fastconv.kernels.cpu.pool import avg_pool2d_backward

    x_shape = (2, 3, 8, 7)
    dy = rng.standard_normal((2, 3, out_size(8, padding, 1, k, stride), out_size(7, padding, 1, k, stride)))
    dx = np.full(x_shape, np.nan)
    P, Q = dy.shape[2:]
    avg_pool2d_backward(dy, dx, k, k, stride, stride, padding, padding, np.full(P, 1.0 / k), np.full(Q, 1.0 / k))
    np.testing.assert_allclose(dx, ref.avg_pool2d_backward(dy, x_shape, k, stride, padding), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_and_its_gradient(rng, dtype):
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    x[np.abs(x) < 0.05] = 0.5  # away from the kink
    np.testing.assert_array_equal(fc.relu(x), ref.relu(x))
    dy = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(fc.relu_backward(dy, x), ref.relu_backward(dy, x))
    if dtype == np.float64:
        assert_close_fd(fc.relu_backward(dy, x), numeric_grad(fc.relu, x, dy))


@pytest.mark.parametrize("k, stride, padding", [(2, 2, 0), (3, 2, 0), (3, 1, 1), (2, 1, 0)])
def test_max_pool_ties_and_nans_follow_one_rule(k, stride, padding):
    """Every path (the 2x2 and 3x3 stride-2 trees and the general scan) picks, in each window, the last NaN if
    there is one, else the first of the largest values (row by row, left to right), as PyTorch does."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (2, 3, 6, 8)).astype(np.float64)  # many ties
    x[rng.random(x.shape) < 0.15] = np.nan
    y, idx = fc.max_pool2d(x, k, stride, padding)
    H, W = x.shape[2:]
    for n, c, p, q in np.ndindex(*y.shape):
        cells = [(h, v) for h in range(p * stride - padding, p * stride - padding + k)
                 for v in range(q * stride - padding, q * stride - padding + k) if 0 <= h < H and 0 <= v < W]
        vals = [x[n, c, h, v] for h, v in cells]
        nans = [i for i, v in enumerate(vals) if np.isnan(v)]
        best = nans[-1] if nans else int(np.argmax(vals))
        assert idx[n, c, p, q] == cells[best][0] * W + cells[best][1], (n, c, p, q)
        np.testing.assert_equal(y[n, c, p, q], vals[best])


POOL_OPTIONS = [
    pytest.param(dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), id="ceil-3x3s2-pad"),
    pytest.param(dict(kernel_size=2, stride=2, ceil_mode=True), id="ceil-2x2-odd-size"),
    pytest.param(dict(kernel_size=(3, 2), stride=(2, 3), padding=((1, 0), (0, 1)), ceil_mode=True), id="ceil-per-side"),
    pytest.param(dict(kernel_size=3, stride=1, padding=((0, 1), (1, 0))), id="per-side"),
    pytest.param(dict(kernel_size=4, stride=3, padding=2, ceil_mode=True), id="ceil-partial-windows"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", POOL_OPTIONS + [
    pytest.param(dict(kernel_size=3, stride=2, dilation=2, padding=2), id="dilated"),
    pytest.param(dict(kernel_size=(2, 3), stride=1, dilation=(3, 1), padding=(1, 1), ceil_mode=True), id="dilated-ceil"),
])
def test_max_pool_options_match_reference(rng, kw, dtype):
    x = distinct(rng, (2, 3, 9, 8), dtype)
    y, idx = fc.max_pool2d(x, **kw)
    y_ref, idx_ref = ref.max_pool2d(x, **kw)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(fc.max_pool2d_backward(dy, idx, x.shape), ref.max_pool2d_backward(dy, idx, x.shape))
    num = numeric_grad(lambda t: fc.max_pool2d(t, **kw)[0], x.astype(np.float64), dy.astype(np.float64), eps=1e-7)
    assert_close_fd(fc.max_pool2d_backward(dy.astype(np.float64), idx, x.shape), num)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("include", [True, False], ids=["count-pad", "exclude-pad"])
@pytest.mark.parametrize("kw", POOL_OPTIONS + [pytest.param(dict(kernel_size=3, stride=2, padding=1), id="padded")])
def test_avg_pool_options_match_reference(rng, kw, include, dtype):
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    y = fc.avg_pool2d(x, **kw, count_include_pad=include)
    t = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref.avg_pool2d(x, **kw, count_include_pad=include), rtol=t, atol=t)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = fc.avg_pool2d_backward(dy, x.shape, **kw, count_include_pad=include)
    np.testing.assert_allclose(dx, ref.avg_pool2d_backward(dy, x.shape, **kw, count_include_pad=include), rtol=t, atol=t)
    if dtype == np.float64:
        num = numeric_grad(lambda a: fc.avg_pool2d(a, **kw, count_include_pad=include), x, dy)
        assert_close_fd(dx, num)


def test_pool_layers_take_the_options(rng):
    from fastconv import nn

    x = distinct(rng, (1, 2, 7, 7), np.float64)
    mp = nn.MaxPool2D(3, 2, 1, dilation=1, ceil_mode=True)
    assert mp(x).shape == (1, 2, 4, 4) and "ceil_mode=True" in repr(mp)
    ap = nn.AvgPool2D(2, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(ap(x), ref.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False), rtol=1e-12)
    assert ap.backward(np.ones((1, 2, 4, 4))).shape == x.shape
    with pytest.raises(ValueError, match="at most half of kernel_size"):
        fc.max_pool2d(x, 2, padding=((0, 2), (0, 0)))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2), dict(kernel_size=3, stride=1, padding=1),
                                dict(kernel_size=(2, 3), stride=1, dilation=(3, 1), padding=(1, 1), ceil_mode=True)],
                         ids=["2x2", "3x3s2", "3x3-padded", "dilated-ceil"])
def test_the_layer_path_keeps_narrow_indices_or_none(rng, kw):
    """A layer's max pooling (every kernel: the 2x2 and 3x3 trees and the scan) keeps int32 indices that route
    the delta as the public int64 ones do, and in eval mode computes none; a backward after an eval-mode
    forward finds them again."""
    from fastconv import nn
    from fastconv.functional.pool import max_pool2d_backward_own, max_pool2d_own

    x = distinct(rng, (2, 3, 9, 10), np.float32)
    y, idx = fc.max_pool2d(x, **kw)
    y32, idx32 = max_pool2d_own(x, **kw)
    assert idx32.dtype == np.int32
    np.testing.assert_array_equal(y32, y)
    np.testing.assert_array_equal(idx32, idx)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(max_pool2d_backward_own(dy, idx32, x.shape), fc.max_pool2d_backward(dy, idx, x.shape))
    y_none, none = max_pool2d_own(x, **kw, indices=False)
    assert none is None
    np.testing.assert_array_equal(y_none, y)
    layer = nn.MaxPool2D(**kw).eval()
    np.testing.assert_array_equal(layer(x), y)
    np.testing.assert_array_equal(layer.backward(dy), fc.max_pool2d_backward(dy, idx, x.shape))
    with pytest.raises(TypeError, match="int64"):
        fc.max_pool2d_backward(dy, idx32, x.shape)  # the public op takes the public type only


def test_max_pool_backward_with_its_geometry_equals_without_and_checks_it(rng):
    """The optional pooling geometry (which lets the GPU gather per input element) changes nothing on the
    result, and a geometry that does not give dy's size is refused, naming both."""
    x = rng.standard_normal((2, 3, 9, 8))
    kw = dict(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)
    y, idx = fc.max_pool2d(x, **kw)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(fc.max_pool2d_backward(dy, idx, x.shape, **kw), fc.max_pool2d_backward(dy, idx, x.shape))
    with pytest.raises(ValueError, match=r"pooled size \(4, 4\).*got shape \(2, 3, 5, 5\)"):
        fc.max_pool2d_backward(dy, idx, x.shape, kernel_size=2)


@pytest.mark.parametrize("size", [1, 2, 7, 1001])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_index_range_check_finds_the_extremes(rng, size, dtype):
    """The range check of max_pool2d_backward's indices (one parallel pass) finds the smallest and largest
    value wherever they are, and a value outside the plane anywhere is refused."""
    from fastconv.kernels.cpu import plan

    a = rng.integers(-50, 50, size=size).astype(dtype)
    assert plan.minmax(a) == (int(a.min()), int(a.max()))
    dy = rng.standard_normal((1, 1, 3, 3))
    for pos in (0, 4, 8):
        idx = np.zeros((1, 1, 3, 3), np.int64)
        idx.flat[pos] = 36
        with pytest.raises(ValueError, match="indices"):
            fc.max_pool2d_backward(dy, idx, (1, 1, 6, 6))
