"""Grouped and depthwise convolution, and the per-side, "same" and "valid" conv padding, against the
references and finite differences."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv as fc
from helpers import case, check_conv, check_conv_fd
from reference import conv_out

GROUPED = [
    case("groups-2", (2, 4, 6, 7, 8, 3, 3), dict(padding=1), 2),
    case("groups-4-strided", (2, 8, 8, 9, 9, 3, 3), dict(stride=2, padding=1), 4),
    case("groups-3-dilated-rect", (2, 6, 9, 9, 10, 2, 3), dict(dilation=(2, 1), padding=(1, 2)), 3),
    case("groups-2-many-channels", (2, 40, 70, 6, 7, 3, 3), dict(padding=1), 2),  # past a register block
    case("depthwise", (2, 5, 5, 8, 9, 3, 3), dict(padding=1), 5),
    case("depthwise-multiplier-2", (2, 3, 6, 8, 7, 3, 3), dict(padding=1), 3),
    case("depthwise-strided-dilated", (2, 4, 4, 11, 10, 3, 3), dict(stride=2, padding=2, dilation=2), 4),
    case("depthwise-rect-stride-2-1", (3, 6, 12, 7, 9, 2, 3), dict(stride=(2, 1), padding=(0, 1)), 6),
    case("depthwise-pad-wider-than-kernel", (1, 2, 2, 4, 4, 3, 3), dict(padding=3), 2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kw, groups", GROUPED)
def test_grouped_conv_matches_reference(rng, shape, kw, groups, dtype):
    check_conv(rng, *shape, kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1), dtype, groups=groups)


@pytest.mark.parametrize("shape, kw, groups", GROUPED[:3] + GROUPED[4:8])
def test_grouped_conv_gradients_match_finite_differences(rng, shape, kw, groups):
    check_conv_fd(rng, *shape, groups=groups, **kw)


@given(N=st.integers(1, 2), Cg=st.integers(1, 3), Kg=st.integers(1, 3), G=st.integers(1, 4), H=st.integers(1, 8),
       W=st.integers(1, 8), R=st.integers(1, 3), S=st.integers(1, 3), stride=st.integers(1, 2),
       pad=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
       dil=st.integers(1, 2), depthwise=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_grouped_conv_sweep(N, Cg, Kg, G, H, W, R, S, stride, pad, dil, depthwise, dtype, seed):
    """Random groupings (depthwise ones too) with per-side padding, strides and dilations."""
    if depthwise:
        Cg = 1
    padding = ((pad[0], pad[1]), (pad[2], pad[3]))
    P, Q = conv_out(H, W, R, S, stride, padding, dil)
    assume(P >= 1 and Q >= 1)
    check_conv(np.random.default_rng(seed), N, Cg * G, Kg * G, H, W, R, S, stride, padding, dil, dtype, groups=G)


@pytest.mark.parametrize("padding", [((0, 1), (2, 0)), ((2, 0), (0, 0)), ((1, 1), (0, 2))],
                         ids=["bottom-left", "top-only", "right-only"])
def test_per_side_padding_gradients_match_finite_differences(rng, padding):
    check_conv_fd(rng, 2, 2, 3, 6, 7, 3, 2, padding=padding, stride=(1, 2))


@pytest.mark.parametrize("R, S, dil", [(3, 3, 1), (4, 2, 1), (2, 5, 2), (1, 1, 1)], ids=["3x3", "even-4x2", "dilated", "1x1"])
def test_same_padding_keeps_the_size_with_the_odd_pixel_at_the_end(rng, R, S, dil):
    """'same' pads (dil*(k-1)) // 2 before and the rest after, as PyTorch does; 'valid' pads nothing."""
    x = rng.standard_normal((2, 3, 7, 8))
    w = rng.standard_normal((4, 3, R, S))
    y = fc.conv2d(x, w, padding="same", dilation=dil)
    assert y.shape == (2, 4, 7, 8)
    th, tw = dil * (R - 1), dil * (S - 1)
    explicit = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    np.testing.assert_allclose(y, fc.conv2d(x, w, padding=explicit, dilation=dil), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(fc.conv2d(x, w, padding="valid"), fc.conv2d(x, w))
    check_conv_fd(rng, 1, 2, 2, 5, 6, R, S, padding="same", dilation=dil)


@pytest.mark.parametrize("call, word", [
    (lambda x, w: fc.conv2d(x, w, groups=3), "groups=3 must divide"),
    (lambda x, w: fc.conv2d(x, w, groups=0), "groups must be >= 1"),
    (lambda x, w: fc.conv2d(x, w, groups=1.5), "groups must be an int"),
    (lambda x, w: fc.conv2d(x, w[:, :1], groups=2), "C / groups = 2"),
    (lambda x, w: fc.conv2d(x, w, padding="same", stride=2), "'same' needs stride 1"),
    (lambda x, w: fc.conv2d(x, w, padding="full"), "padding must be"),
    (lambda x, w: fc.conv2d(x, w, padding=((1, -1), (0, 0))), "padding must be >= 0"),
    (lambda x, w: fc.conv2d_backward_input(np.zeros((2, 6, 6, 6)), w, (2, 8, 8, 8), groups=2), "C / groups = 4"),
], ids=["not-dividing", "zero", "float", "weight-axis", "same-strided", "unknown-string", "negative-side", "dx-weight-axis"])
def test_bad_groups_and_padding_are_named(call, word):
    x = np.zeros((2, 4, 8, 8))
    w = np.zeros((6, 2, 3, 3))
    with pytest.raises((ValueError, TypeError)) as info:
        call(x, w)
    assert word in str(info.value)


def test_grouped_layer_and_its_parameters(rng):
    """Conv2D(groups=...) has PyTorch's weight shape and its gradients match the functional ones."""
    from fastconv import nn

    layer = nn.Conv2D(4, 6, 3, padding="same", groups=2)
    assert layer.weight.shape == (6, 2, 3, 3) and "groups=2" in repr(layer)
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, fc.conv2d_backward_input(dy, layer.weight.data, x.shape, padding=1, groups=2), rtol=1e-6)
    np.testing.assert_allclose(layer.weight.grad, fc.conv2d_backward_weight(dy, x, (6, 2, 3, 3), padding=1, groups=2), rtol=1e-6)
    with pytest.raises(ValueError, match="groups=4 must divide"):
        nn.Conv2D(6, 4, 3, groups=4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kw", [(((2, 3, 9, 11), (3, 1, 3, 3)), dict(padding=1)),
                                       (((2, 3, 9, 70), (6, 1, 5, 2)), dict(padding=(2, 0), dilation=(1, 2))),
                                       (((1, 4, 5, 4), (4, 1, 7, 3)), dict(padding=3))])
def test_depthwise_forward_propagates_inf_and_nan_as_the_maths_says(shape, kw, dtype):
    """The row-block forward multiplies inputs by zero weights where a row has no tap: a plane with an Inf or
    a NaN must take the exact path, so the non-finite outputs are exactly the reference's."""
    import reference as ref

    rng = np.random.default_rng(3)
    x, w = (rng.standard_normal(s).astype(dtype) for s in shape)
    x[0, 1, 2, 3], x[-1, 0, 0, 0] = np.inf, np.nan
    y = fc.conv2d(x, w, padding=kw["padding"], dilation=kw.get("dilation", 1), groups=x.shape[1])
    want = ref.conv2d(x, w, padding=kw["padding"], dilation=kw.get("dilation", 1), groups=x.shape[1])
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(y[finite], want[finite], rtol=1e-4, atol=1e-4)
