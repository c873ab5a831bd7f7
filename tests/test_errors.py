"""Every user mistake raises ValueError/TypeError naming the argument, what it got and what it needs."""
import numpy as np
import pytest

import fastconv as fc

x = np.zeros((2, 3, 8, 8), np.float32)
w = np.zeros((4, 3, 3, 3), np.float32)
dy = np.zeros((2, 4, 6, 6), np.float32)
px = np.zeros((1, 2, 6, 6), np.float32)
py, pidx = fc.max_pool2d(px, 2)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: fc.conv2d(x[0], w), ValueError, ["x", "4-D", "(3, 8, 8)"]),
        (lambda: fc.conv2d(x, w[0]), ValueError, ["weight", "4-D"]),
        (lambda: fc.conv2d(x, np.zeros((4, 2, 3, 3), np.float32)), ValueError, ["x has 3 channels", "weight expects 2"]),
        (lambda: fc.conv2d(x, w, np.zeros(5, np.float32)), ValueError, ["bias", "(4,)", "(5,)"]),
        (lambda: fc.conv2d(x, w, np.zeros((4, 1), np.float32)), ValueError, ["bias", "(4, 1)"]),
        (lambda: fc.conv2d(x, w, stride=0), ValueError, ["stride", ">= 1", "0"]),
        (lambda: fc.conv2d(x, w, dilation=(1, 0)), ValueError, ["dilation", ">= 1"]),
        (lambda: fc.conv2d(x, w, padding=-1), ValueError, ["padding", ">= 0", "-1"]),
        (lambda: fc.conv2d(x, w, dilation=4), ValueError, ["does not fit", "8x8", "needs at least 1x1"]),
        (lambda: fc.conv2d(x, np.zeros((4, 3, 9, 1), np.float32)), ValueError, ["kernel 9x1", "does not fit"]),
        (lambda: fc.conv2d(x, w, stride=(1, 2, 3)), ValueError, ["stride", "pair", "length 3"]),
        (lambda: fc.conv2d(x, w, padding=1.5), TypeError, ["padding", "int", "1.5"]),
        (lambda: fc.conv2d(x, w, stride=(1, "2")), TypeError, ["stride", "'2'"]),
        (lambda: fc.conv2d(x, w, stride=True), TypeError, ["stride"]),
        (lambda: fc.conv2d(x.astype(np.int32), w), TypeError, ["x", "float32 or float64", "int32"]),
        (lambda: fc.conv2d(x.astype(np.complex64), w), TypeError, ["x", "complex64"]),
        (lambda: fc.conv2d(x.astype(object), w), TypeError, ["x", "object"]),
        (lambda: fc.conv2d(x.astype(np.float16), w), TypeError, ["x", "float16"]),
        (lambda: fc.conv2d(x.tolist(), w), TypeError, ["x", "list"]),
        (lambda: fc.conv2d("x", w), TypeError, ["x", "str"]),
        (lambda: fc.conv2d(x, w.astype(np.float64)), TypeError, ["x float32", "weight float64"]),
        (lambda: fc.conv2d_backward_input(dy[:, :, :5], w, x.shape), ValueError, ["dy", "(2, 4, 6, 6)", "(2, 4, 5, 6)"]),
        (lambda: fc.conv2d_backward_input(dy, w, (2, 3, 8)), ValueError, ["x_shape", "4 entries"]),
        (lambda: fc.conv2d_backward_input(dy, w, (2, 5, 8, 8)), ValueError, ["x_shape has 5 channels"]),
        (lambda: fc.conv2d_backward_input(dy, w, (2, 3, 0, 8)), ValueError, ["x_shape", ">= 1"]),
        (lambda: fc.conv2d_backward_input(dy, w, None), TypeError, ["x_shape"]),
        (lambda: fc.conv2d_backward_weight(dy, x, (4, 3, 3, 2)), ValueError, ["dy", "(2, 4, 6, 7)", "(2, 4, 6, 6)"]),
        (lambda: fc.conv2d_backward_weight(dy, x, (4, 2, 3, 3)), ValueError, ["x has 3 channels", "weight_shape"]),
        (lambda: fc.conv2d_backward_weight(dy, x.astype(np.float64), w.shape), TypeError, ["dy float32", "x float64"]),
        (lambda: fc.conv2d_backward_bias(dy[0]), ValueError, ["dy", "4-D"]),
        (lambda: fc.max_pool2d(px, 2, padding=2), ValueError, ["padding", "half of kernel_size"]),
        (lambda: fc.max_pool2d(px, 0), ValueError, ["kernel_size", ">= 1"]),
        (lambda: fc.max_pool2d(px, 7), ValueError, ["does not fit", "needs at least 1x1"]),
        (lambda: fc.avg_pool2d(px, 3, padding=(0, 2)), ValueError, ["padding", "half of kernel_size"]),
        (lambda: fc.max_pool2d_backward(py, pidx[:, :, :2], px.shape), ValueError, ["indices", "(1, 2, 3, 3)", "(1, 2, 2, 3)"]),
        (lambda: fc.max_pool2d_backward(py, pidx.astype(np.int32), px.shape), TypeError, ["indices", "int64", "int32"]),
        (lambda: fc.max_pool2d_backward(py, pidx + 36, px.shape), ValueError, ["indices", "[0, 36)"]),
        (lambda: fc.max_pool2d_backward(py, pidx - 100, px.shape), ValueError, ["indices", "[0, 36)"]),
        (lambda: fc.max_pool2d_backward(py, pidx.tolist(), px.shape), TypeError, ["indices", "list"]),
        (lambda: fc.max_pool2d_backward(py, pidx, (1, 3, 6, 6)), ValueError, ["dy", "(N, C) = (1, 3)"]),
        (lambda: fc.avg_pool2d_backward(py[:, :, :2], px.shape, 2), ValueError, ["dy", "(1, 2, 3, 3)"]),
        (lambda: fc.relu_backward(dy, dy[:1]), ValueError, ["dy", "shape"]),
        (lambda: fc.relu(np.zeros(3, np.int64)), TypeError, ["x", "int64"]),
        (lambda: fc.linear(np.zeros((2, 5)), np.zeros((3, 4))), ValueError, ["x has 5 features", "weight (O, I) expects 4"]),
        (lambda: fc.linear(np.zeros((2, 4)), np.zeros((3, 4)), np.zeros(2)), ValueError, ["bias", "(3,)", "(2,)"]),
        (lambda: fc.linear_backward_input(np.zeros((2, 2)), np.zeros((3, 4))), ValueError, ["dy", "3 columns"]),
        (lambda: fc.linear_backward_weight(np.zeros((2, 3)), np.zeros((5, 4))), ValueError, ["dy", "batch size 5"]),
    ],
)
def test_bad_input_is_named(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value!s}"


def test_out_of_range_indices_never_write():
    """The range check runs before the kernel: dx is never touched out of bounds."""
    bad = pidx.copy()
    bad[0, 0, 0, 0] = 10**12
    with pytest.raises(ValueError, match="indices"):
        fc.max_pool2d_backward(py, bad, px.shape)
