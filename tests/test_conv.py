"""conv2d forward, dX, dW and db against the references and against finite differences."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv as fc
from fastconv.functional.conv import conv2d_backward_weight_bias
from helpers import case, check_conv, check_conv_fd
import reference as ref
from reference import out_size

from fastconv.kernels.cpu.blocks import MT

small = st.integers(1, 3)
pairs = lambda lo, hi: st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))  # noqa: E731


def _as_pair(v):
    return v if isinstance(v, tuple) else (v, v)


@given(
    N=small, C=small, K=small, H=st.integers(1, 9), W=st.integers(1, 9), R=st.integers(1, 4), S=st.integers(1, 4),
    stride=pairs(1, 3), padding=pairs(0, 2), dilation=pairs(1, 2),
    dtype=st.sampled_from([np.float32, np.float64]), bias=st.booleans(), seed=st.integers(0, 2**16),
)
def test_conv_matches_reference(N, C, K, H, W, R, S, stride, padding, dilation, dtype, bias, seed):
    (sh, sw), (ph, pw), (dh, dw) = _as_pair(stride), _as_pair(padding), _as_pair(dilation)
    assume(out_size(H, ph, dh, R, sh) >= 1 and out_size(W, pw, dw, S, sw) >= 1)
    check_conv(np.random.default_rng(seed), N, C, K, H, W, R, S, stride, padding, dilation, dtype, bias)


@pytest.mark.parametrize(
    "shape, kw",
    [
        case("plain-rectangular-kernel", (2, 2, 3, 6, 7, 3, 2), dict()),
        case("stride-2-pad-1", (2, 2, 3, 7, 7, 3, 3), dict(stride=2, padding=1)),
        case("per-axis-stride-pad-dilation", (1, 3, 2, 8, 9, 2, 3), dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1))),
        case("dilation-2-pad-2", (2, 1, 2, 9, 8, 3, 3), dict(dilation=2, padding=2)),
        case("pad-rows-no-output-reaches", (1, 2, 2, 6, 6, 3, 3), dict(stride=3, padding=2)),  # padding rows that no output reaches
    ],
)
def test_conv_gradients_match_finite_differences(rng, shape, kw):
    check_conv_fd(rng, *shape, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lenet_shapes(rng, dtype):
    check_conv(rng, 4, 1, 6, 28, 28, 5, 5, 1, 2, 1, dtype)
    check_conv(rng, 4, 6, 16, 14, 14, 5, 5, 1, 0, 1, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, kw",
    [
        case("ragged-channel-blocks", (3, 5, 37, 11, 12, 3, 3), dict(padding=1)),  # several blocks of output channels, with ragged edges
        case("three-dw-blocks", (2, 4, 70, 9, 10, 3, 2), dict(stride=2, padding=1)),  # three blocks in dW
        case("phased-forward", (2, 4, 7, 9, 10, 3, 2), dict(stride=2, padding=1)),  # the strided forward in phases (few output channels)
        case("broadcast-forward", (2, 5, 17, 9, 10, 3, 3), dict(stride=2, padding=1)),  # the strided forward that broadcasts positions
        case("rows-longer-than-dw-panel", (2, 3, 33, 3, 270, 1, 3), dict()),  # rows longer than a dW panel (one row per chunk)
        case("outputs-all-padding", (2, 2, 17, 8, 9, 3, 3), dict(padding=(4, 1), dilation=(1, 2))),  # outputs that are all padding
        case("positions-across-images", (40, 2, 20, 6, 5, 2, 2), dict(stride=(1, 2))),  # more positions than a packed panel spans images
        case("half-block-of-channels", (3, 3, 12, 7, 9, 3, 3), dict()),  # 9-16 channels (half a block of NR)
        case("stride-2-pad-1-0", (3, 3, 13, 9, 8, 3, 2), dict(stride=2, padding=(1, 0))),
        case("short-run-tail", (2, 3, 9, 7, 8, 3, 3), dict()),  # a forward run's tail of at most NR/2 positions (the half block)
        case("dx-thin-block", (3, MT, 7, 13, 14, 3, 3), dict(padding=1)),  # dX onto MT channels: the thin block, several runs of NT
        case("dx-past-thin-block", (2, MT + 1, 6, 13, 14, 3, 3), dict(padding=1)),  # one channel more than the thin block holds
        case("dx-1-channel-phases", (2, 1, 5, 20, 21, 5, 5), dict(stride=2, padding=2)),  # dX onto 1 channel, phase by phase
        case("dx-phases-without-taps", (2, 2, 3, 11, 12, 2, 3), dict(stride=3, padding=(0, 1))),  # dX phases that no tap reaches stay zero
    ],
)
def test_micro_kernel_blocking(rng, shape, kw, dtype):
    """Shapes that cut the register blocks (MR output channels x NR positions, or NR channels in dW; the thin
    MT x NT block of a dX onto few channels; the half block of a short tail), the dW position groups and
    panels, the dX stride phases, and the forward's last run (which would read past the batch) at odd places."""
    check_conv(rng, *shape, kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, pad, dil",
    [
        case("lenet-c2-short-last-group", (5, 6, 16, 14, 14, 5, 5), (0, 0), (1, 1)),  # LeNet C2, 5 images: the last group of 2 or 4 is short
        case("ragged-second-block", (3, 2, 9, 7, 8, 3, 3), (1, 1), (1, 1)),  # 9 channels: a second, ragged block of MR
        case("per-axis-pad-dilation", (4, 3, 20, 9, 6, 3, 2), (2, 1), (1, 2)),  # padding and dilation, different per axis
        case("rows-over-one-vector", (2, 3, 12, 5, 20, 3, 3), (1, 1), (1, 1)),  # rows of more than one vector (Q > 16)
        case("pad-wider-than-kernel", (3, 2, 10, 4, 4, 3, 3), (3, 3), (1, 1)),  # padding wider than the kernel: outputs that see only zeros
        case("wide-rows-dilated", (2, 2, 40, 3, 35, 2, 3), (0, 0), (1, 2)),
    ],
)
def test_unfolded_forward(rng, shape, pad, dil, dtype):
    """The unfolded forward against the reference for every grouping of images and split over threads, with
    and without the fused ReLU, into an output filled with NaN first (each output must be written once)."""
    from fastconv.kernels.cpu.forward import _unfolded

    N, C, K, H, W, R, S = shape
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    want = ref.conv2d(x, w, b, padding=pad, dilation=dil)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for G, parts, relu in [(1, 2, False), (2, 2, True), (3, 1, False), (4, 3, True), (4, 2, False)]:
        y = np.full(want.shape, np.nan, dtype)
        _unfolded(x, w, b, y, *pad, *dil, G, parts, relu, 0, 0)
        np.testing.assert_allclose(y, np.maximum(want, 0) if relu else want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copy_lanes(dtype):
    """The masked row copy behind the unfolded forward: lanes lo <= j < hi come from src, the other lanes
    below n are zero, and nothing at or past n is written."""
    from numba import njit

    from fastconv.kernels.cpu.blocks import V
    from fastconv.kernels.cpu.intrinsics import copy_lanes

    @njit
    def copy(src, so, dst, do, lo, hi, n):
        copy_lanes(src, np.uint64(so), dst, np.uint64(do), lo, hi, n)

    src = np.arange(1, 3 * V + 1, dtype=dtype)
    for so, do, lo, hi, n in [(0, 0, 0, V, V), (3, 5, 2, 9, 12), (V, 1, -4, V + 3, V - 1), (2, 0, 5, 5, 7), (0, 2, 0, 3, 0)]:
        dst = np.full(3 * V, -1.0, dtype)
        copy(src, so, dst, do, lo, hi, n)
        want = np.full(3 * V, -1.0, dtype)
        for j in range(n):
            want[do + j] = src[so + j] if lo <= j < hi else 0
        np.testing.assert_array_equal(dst, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_store_lanes(dtype):
    """The masked epilogue of every unpacked product: dst[d + j] = acc[a + j] + b for j < n, clamped at zero
    with relu (NaN stays NaN, as in fc.relu), and nothing at or past n written."""
    from numba import njit

    from fastconv.kernels.cpu.blocks import V
    from fastconv.kernels.cpu.intrinsics import store_lanes

    @njit
    def store(acc, a, dst, d, n, b, relu):
        store_lanes(acc, np.uint64(a), dst, np.uint64(d), n, b, relu)

    acc = np.arange(-V, 2 * V, dtype=dtype)
    acc[V + 2] = np.nan
    for a, d, n, relu in [(0, 0, V, False), (V - 3, 5, 9, True), (V, 1, V - 1, True), (2 * V, 0, V, False), (4, 2, 0, True)]:
        dst = np.full(3 * V, -9.0, dtype)
        store(acc, a, dst, d, n, dtype(0.5), relu)
        want = np.full(3 * V, -9.0, dtype)
        v = acc[a : a + n] + dtype(0.5)
        want[d : d + n] = np.where(v < 0, 0, v) if relu else v
        np.testing.assert_array_equal(dst, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transpose_lanes(dtype):
    """The register transpose behind dW's delta layout: dst[do + c*ds + r] = src[so + r*ss + c] for c < nc,
    zero for rows nr <= r < V, and nothing written outside the nc vectors of V (nor any row of src read past
    nr: those rows lie past the end of src here)."""
    from numba import njit

    from fastconv.kernels.cpu.blocks import V
    from fastconv.kernels.cpu.intrinsics import transpose_lanes

    @njit
    def transpose(src, so, ss, dst, do, ds, nr, nc):
        transpose_lanes(src, so, ss, dst, do, ds, nr, nc)

    for so, ss, do, ds, nr, nc in [(0, V, 0, V, V, V), (3, V + 5, 2, 2 * V, V - 3, 5), (1, 7, V, V + 1, 2, V),
                                   (0, V, 0, V, 1, 1), (4, V, 3, V, V, 0)]:
        src = np.arange(1, so + max(nr - 1, 0) * ss + nc + 1, dtype=dtype)  # ends at the last element read
        dst = np.full(do + V * ds + V, -1.0, dtype)
        transpose(src, so, ss, dst, do, ds, nr, nc)
        want = np.full(dst.size, -1.0, dtype)
        for c in range(nc):
            for r in range(V):
                want[do + c * ds + r] = src[so + r * ss + c] if r < nr else 0
        np.testing.assert_array_equal(dst, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_store_transposed(dtype):
    """The broadcast forward's epilogue: dst[do + c*ds + r] = relu?(src[so + r*ss + c] + b[bo + c]) for r < nr
    and c < nc, NaN kept, and nothing written outside those nr x nc elements (the rest of dst keeps its
    sentinel, also between the columns, ds > nr)."""
    from numba import njit

    from fastconv.kernels.cpu.blocks import MR, V
    from fastconv.kernels.cpu.intrinsics import store_transposed

    @njit
    def store(src, so, ss, dst, do, ds, nr, nc, b, bo, relu):
        store_transposed(src, so, ss, dst, do, ds, nr, nc, b, bo, relu)

    rng = np.random.default_rng(5)
    for so, ss, do, ds, nr, nc, bo, relu in [(0, 2 * V, 0, MR, MR, V, 0, False), (V, 2 * V, 3, 11, MR - 3, V - 2, 5, True),
                                             (2, V + 1, 0, V + 3, 1, 1, 0, True), (0, V, 7, MR, MR, 0, 1, False),
                                             (1, V, 1, 9, 0, V, 2, True)]:
        src = rng.standard_normal(so + (MR - 1) * ss + V).astype(dtype)
        src[so + ss + 1] = np.nan
        b = rng.standard_normal(bo + V).astype(dtype)
        dst = np.full(do + V * ds + MR + 4, -7.0, dtype)
        store(src, so, ss, dst, do, ds, nr, nc, b, bo, relu)
        want = np.full(dst.size, -7.0, dtype)
        for c in range(nc):
            for r in range(nr):
                v = src[so + r * ss + c] + b[bo + c]
                want[do + c * ds + r] = 0 if relu and v < 0 else v
        np.testing.assert_array_equal(dst, want)


def test_unfolded_forward_is_chosen_for_short_rows():
    """conv2d takes the unfolded forward where the padded-width layout would waste a twentieth of each row or
    more (LeNet C2: 4 of 14 columns; 2 of 30 on 28x28 with padding 1), and not for a copy over 512 KB, rows
    without junk (1x1 kernels) or few output channels (the thin block)."""
    from fastconv.kernels.cpu import plan

    threads = fc.get_num_threads()
    assert plan.use_unfolded_forward((64, 6, 14, 14), (16, 6, 5, 5), 0, 0, 10, 4, threads)
    assert plan.use_unfolded_forward((64, 64, 7, 7), (64, 64, 3, 3), 1, 1, 7, 4, threads)
    assert plan.use_unfolded_forward((32, 32, 28, 28), (64, 32, 3, 3), 1, 1, 28, 4, threads)
    assert not plan.use_unfolded_forward((32, 64, 28, 28), (64, 64, 3, 3), 1, 1, 28, 4, threads)  # 645 KB
    assert not plan.use_unfolded_forward((32, 32, 28, 28), (64, 32, 1, 1), 0, 0, 28, 4, threads)  # 1x1: no junk
    assert not plan.use_unfolded_forward((4, 6, 14, 14), (3, 6, 5, 5), 0, 0, 10, 4, threads)
    assert not plan.use_unfolded_forward((2, 512, 9, 9), (64, 512, 3, 3), 1, 1, 9, 4, threads)  # a 1 MB copy per image
    assert not plan.use_unfolded_forward((1, 6, 14, 14), (16, 6, 5, 5), 0, 0, 10, 4, 2)  # one image, 2 threads
    assert plan.use_unfolded_forward((1, 6, 14, 14), (16, 6, 5, 5), 0, 0, 10, 4, 1)


def test_weight_grad_path_rule():
    """The dot-product dW where the broadcast kernel's narrow block (NR/2 channels wide) would be less than
    half full; the broadcast kernel otherwise, whatever the row width."""
    from fastconv.kernels.cpu import plan
    from fastconv.kernels.cpu.blocks import NR

    assert plan.weight_grad_path(1) == "dot"
    assert plan.weight_grad_path(NR // 4 - 1) == "dot"
    assert plan.weight_grad_path(NR // 4) == "broadcast"
    assert plan.weight_grad_path(NR // 2) == "broadcast"
    assert plan.weight_grad_path(NR + 1) == "broadcast"


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, want", [
    pytest.param((64, 1, 28, 28), (6, 1, 5, 5), (1, 1), (2, 2), "unfolded", id="lenet-c1"),
    pytest.param((64, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0), "unfolded", id="lenet-c2"),
    pytest.param((32, 64, 28, 28), (64, 64, 3, 3), (1, 1), (1, 1), "phased", id="mid-wide-rows"),
    pytest.param((8, 3, 112, 112), (64, 3, 7, 7), (2, 2), (3, 3), "broadcast", id="stem"),
    pytest.param((8, 3, 32, 32), (7, 3, 3, 3), (2, 2), (1, 1), "phased", id="strided-few-output-channels"),
    pytest.param((8, 32, 28, 28), (32, 32, 3, 3), (2, 2), (1, 1), "broadcast", id="strided-many-channels"),
])
def test_forward_kernel_path_on_this_cpu(x_shape, w_shape, stride, padding, want):
    """The plan's choice of forward kernel for shapes whose path is the same for both block shapes (AVX2's
    6 x 16 and AVX-512's 8 x 32): each batch holds an image per thread."""
    from fastconv.kernels.cpu import plan

    Q = (x_shape[3] + 2 * padding[1] - w_shape[3]) // stride[1] + 1
    assert plan.forward_path(x_shape, w_shape, stride, padding, Q, 4) == want


def test_non_contiguous_inputs(rng):
    x = rng.standard_normal((2, 8, 3, 9)).transpose(0, 2, 3, 1)  # (2, 3, 9, 8), not C-contiguous
    w = rng.standard_normal((3, 4, 3, 3))[:, ::-1].transpose(1, 0, 2, 3)  # (4, 3, 3, 3), strided
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    y = fc.conv2d(x, w, padding=1)
    np.testing.assert_allclose(y, fc.conv2d(np.ascontiguousarray(x), np.ascontiguousarray(w), padding=1))
    dy = rng.standard_normal(y.shape)[:, :, ::-1]
    np.testing.assert_allclose(
        fc.conv2d_backward_weight(dy, x, w.shape, padding=1),
        fc.conv2d_backward_weight(np.ascontiguousarray(dy), np.ascontiguousarray(x), w.shape, padding=1),
    )


def test_conv2d_of_a_known_case():
    """A 3x3 input correlated with a 2x2 kernel, worked by hand."""
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)  # [[0,1,2],[3,4,5],[6,7,8]]
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    y = fc.conv2d(x, w, np.array([0.5]))
    # top-left: 0*1 + 1*2 + 3*3 + 4*4 = 27
    np.testing.assert_array_equal(y[0, 0], [[27.5, 37.5], [57.5, 67.5]])
    dx = fc.conv2d_backward_input(np.ones((1, 1, 2, 2)), w, x.shape)
    # full convolution of a 2x2 block of ones with the flipped kernel
    np.testing.assert_array_equal(dx[0, 0], [[1, 3, 2], [4, 10, 6], [3, 7, 4]])


@pytest.mark.parametrize("shape, kw", [case("dot-dw-few-channels", (3, 2, 6, 9, 8, 3, 3), dict(padding=1)),
                                       case("broadcast-dw-two-blocks", (3, 2, 37, 9, 8, 3, 3), dict(padding=1)),  # the packed dW, two blocks
                                       case("strided-dw", (2, 3, 20, 9, 9, 3, 3), dict(stride=2))])
def test_weight_gradient_with_the_bias_gradient(rng, shape, kw):
    """nn.Conv2D asks conv2d_backward_weight for db too (summed while the kernel reads the delta): both must
    match the references, and db must match conv2d_backward_bias."""
    N, C, K, H, W, R, S = shape
    x = rng.standard_normal((N, C, H, W))
    dy = rng.standard_normal(fc.conv2d(x, np.zeros((K, C, R, S)), **kw).shape)
    dw, db = conv2d_backward_weight_bias(dy, x, (K, C, R, S), **kw)
    np.testing.assert_allclose(dw, ref.conv2d_backward_weight(dy, x, (K, C, R, S), **kw), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, ref.conv2d_backward_bias(dy), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, fc.conv2d_backward_bias(dy), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "shape, kw",
    [
        case("every-phase-has-taps", (2, 3, 4, 9, 10, 3, 3), dict(stride=2, padding=1)),  # every phase has taps: every input is written
        case("phases-without-taps-zeroed", (2, 2, 3, 11, 12, 2, 3), dict(stride=3, padding=(0, 1))),  # phases no tap reaches: zeroed
        case("1x1-stride-2", (2, 2, 3, 7, 8, 1, 1), dict(stride=2)),
    ],
)
def test_cpu_input_gradient_writes_every_input(rng, shape, kw):
    """The CPU input-gradient kernel takes an uninitialised dx: it must write all of it. Filled with NaN
    beforehand, a single input left alone would show."""
    from fastconv.kernels.cpu.input_grad import conv2d_backward_input_phased

    N, C, K, H, W, R, S = shape
    (sh, sw), (ph, pw) = _as_pair(kw.get("stride", 1)), _as_pair(kw.get("padding", 0))
    w = rng.standard_normal((K, C, R, S))
    dy = rng.standard_normal((N, K, out_size(H, ph, 1, R, sh), out_size(W, pw, 1, S, sw)))
    dx = np.full((N, C, H, W), np.nan)
    conv2d_backward_input_phased(dy, w, dx, sh, sw, 1, 1, ph, pw)
    np.testing.assert_allclose(dx, ref.conv2d_backward_input(dy, w, (N, C, H, W), **kw), rtol=1e-10, atol=1e-10)
