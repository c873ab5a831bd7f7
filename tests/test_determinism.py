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


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
def test_one_and_two_threads_agree():
    before = fc.get_num_threads()
    try:
        fc.set_num_threads(2)
        two = _all_ops(np.random.default_rng(3), np.float32)
        fc.set_num_threads(1)
        one = _all_ops(np.random.default_rng(3), np.float32)
    finally:
        fc.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_set_num_threads_checks_its_argument():
    with pytest.raises(ValueError, match="n must be in"):
        fc.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        fc.set_num_threads(1.5)
