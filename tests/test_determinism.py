"""Repeated calls give bit-identical results; 1 and 2 threads agree."""
import numba
import numpy as np
import pytest

import fastconv as fc


def _all_ops(rng, dtype):
    x = rng.standard_normal((8, 6, 14, 14)).astype(dtype)
    w = rng.standard_normal((16, 6, 5, 5)).astype(dtype)
    y = fc.conv2d(x, w, rng.standard_normal(16).astype(dtype), padding=1)
    dy = rng.standard_normal(y.shape).astype(dtype)
    py, idx = fc.max_pool2d(x, 3, 1, 1)  # overlapping windows
    pdy = rng.standard_normal(py.shape).astype(dtype)
    return [
        y,
        fc.conv2d_backward_input(dy, w, x.shape, padding=1),
        fc.conv2d_backward_weight(dy, x, w.shape, padding=1),
        fc.conv2d_backward_bias(dy),
        py,
        fc.max_pool2d_backward(pdy, idx, x.shape),
        fc.avg_pool2d_backward(pdy, x.shape, 3, 1, 1),
        fc.relu_backward(dy, y),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_repeated_calls_are_bit_identical(dtype):
    first = _all_ops(np.random.default_rng(7), dtype)
    for _ in range(3):
        again = _all_ops(np.random.default_rng(7), dtype)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)


def _with_threads(n, fn):
    before = fc.get_num_threads()
    try:
        fc.set_num_threads(n)
        return fn()
    finally:
        fc.set_num_threads(before)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
def test_one_and_two_threads_agree():
    """Every gradient and pooling pass splits its work by the shapes alone, so it is bit-identical for any
    thread count. The forward may not be: whether it takes the unfolded kernel, which sums the taps in another
    order, depends on there being an image per thread, so it is compared to rounding."""
    one = _with_threads(1, lambda: _all_ops(np.random.default_rng(3), np.float32))
    two = _with_threads(2, lambda: _all_ops(np.random.default_rng(3), np.float32))
    np.testing.assert_allclose(one[0], two[0], rtol=1e-6, atol=1e-6)
    for a, b in zip(one[1:], two[1:]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("K, stride", [(4, 1), (40, 1), (40, 2)], ids=["dot-kernel", "broadcast-kernel", "strided"])
def test_weight_gradient_is_bit_identical_for_any_thread_count(K, stride):
    """dW (and db beside it) sums its partial blocks in a fixed order that depends only on the shapes."""
    from fastconv.functional.conv import conv2d_backward_weight_bias

    rng = np.random.default_rng(11)
    x = rng.standard_normal((9, 5, 13, 12)).astype(np.float32)
    dy = rng.standard_normal(fc.conv2d(x, np.zeros((K, 5, 3, 3), np.float32), stride=stride).shape).astype(np.float32)
    run = lambda: conv2d_backward_weight_bias(dy, x, (K, 5, 3, 3), stride=stride)  # noqa: E731
    one, two = _with_threads(1, run), _with_threads(2, run)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_set_num_threads_checks_its_argument():
    with pytest.raises(ValueError, match="n must be in"):
        fc.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        fc.set_num_threads(1.5)
