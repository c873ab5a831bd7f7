"""Every functional op over edge-case shapes, checked against the references. Run by test_reliability.py in a
child process with NUMBA_BOUNDSCHECK=1 (and no kernel cache), so any out-of-bounds access raises IndexError."""
import itertools
import sys

import numpy as np

import fastconv as fc
import reference as ref


def main():
    rng = np.random.default_rng(0)
    n = 0
    for (H, W), (R, S), st, pad, dil, (C, K) in itertools.product(
        [(1, 1), (5, 7), (9, 4)], [(1, 1), (3, 2), (5, 5)], [1, 2, (3, 1)], [0, 2], [1, (2, 1)], [(5, 6), (9, 20), (3, 37)]
    ):
        st2, pad2, dil2 = (st if isinstance(st, tuple) else (st, st)), (pad, pad), (dil if isinstance(dil, tuple) else (dil, dil))
        P = ref.out_size(H, pad2[0], dil2[0], R, st2[0])
        Q = ref.out_size(W, pad2[1], dil2[1], S, st2[1])
        if P < 1 or Q < 1:
            continue
        kw = dict(stride=st, padding=pad, dilation=dil)
        x = rng.standard_normal((2, C, H, W))
        w = rng.standard_normal((K, C, R, S))
        dy = rng.standard_normal((2, K, P, Q))
        np.testing.assert_allclose(fc.conv2d(x, w, **kw), ref.conv2d(x, w, **kw), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(fc.conv2d_backward_input(dy, w, x.shape, **kw), ref.conv2d_backward_input(dy, w, x.shape, **kw), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(fc.conv2d_backward_weight(dy, x, w.shape, **kw), ref.conv2d_backward_weight(dy, x, w.shape, **kw), rtol=1e-9, atol=1e-9)
        n += 1
        if 2 * pad <= min(R, S) and ref.out_size(H, pad, 1, R, st2[0]) >= 1 and ref.out_size(W, pad, 1, S, st2[1]) >= 1:
            y, idx = fc.max_pool2d(x, (R, S), st, pad)
            fc.max_pool2d_backward(np.ones_like(y), idx, x.shape)
            a = fc.avg_pool2d(x, (R, S), st, pad)
            np.testing.assert_allclose(a, ref.avg_pool2d(x, (R, S), st, pad), rtol=1e-9, atol=1e-9)
            fc.avg_pool2d_backward(np.ones_like(a), x.shape, (R, S), st, pad)
    for (H, W), k, st, pad in itertools.product([(3, 3), (7, 8), (9, 4)], [2, 3], [2], [0, 1]):  # the tree paths
        if 2 * pad > k or ref.out_size(H, pad, 1, k, st) < 1 or ref.out_size(W, pad, 1, k, st) < 1:
            continue
        x = rng.standard_normal((2, 3, H, W))
        y, idx = fc.max_pool2d(x, k, st, pad)
        y_ref, idx_ref = ref.max_pool2d(x, k, st, pad)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)
        fc.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    for (H, W), (C, K, G), st, pad, dil, ceil in itertools.product(  # grouped and depthwise, pooling options
        [(1, 1), (6, 5)], [(4, 6, 2), (6, 6, 6), (3, 6, 3), (40, 40, 2)], [1, 2], [((0, 1), (1, 0)), 1], [1, 2], [False, True]
    ):
        P, Q = ref.conv_out(H, W, 3, 3, st, pad, dil)
        if P < 1 or Q < 1:
            continue
        kw = dict(stride=st, padding=pad, dilation=dil, groups=G)
        x = rng.standard_normal((2, C, H, W))
        w = rng.standard_normal((K, C // G, 3, 3))
        dy = rng.standard_normal((2, K, P, Q))
        np.testing.assert_allclose(fc.conv2d(x, w, **kw), ref.conv2d(x, w, **kw), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(fc.conv2d_backward_input(dy, w, x.shape, **kw), ref.conv2d_backward_input(dy, w, x.shape, **kw), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(fc.conv2d_backward_weight(dy, x, w.shape, **kw), ref.conv2d_backward_weight(dy, x, w.shape, **kw), rtol=1e-9, atol=1e-9)
        n += 1
        pkw = dict(kernel_size=3, stride=st, padding=pad, ceil_mode=ceil)
        if min(H, W) >= 2:
            y, idx = fc.max_pool2d(x, dilation=dil, **pkw)
            fc.max_pool2d_backward(np.ones_like(y), idx, x.shape)
            for include in (True, False):
                a = fc.avg_pool2d(x, count_include_pad=include, **pkw)
                np.testing.assert_allclose(a, ref.avg_pool2d(x, count_include_pad=include, **pkw), rtol=1e-9, atol=1e-9)
                fc.avg_pool2d_backward(np.ones_like(a), x.shape, count_include_pad=include, **pkw)
        y, cache = fc.batch_norm2d(x, np.ones(C), np.zeros(C), relu=ceil) if 2 * H * W > 1 else (None, None)
        if cache is not None:
            fc.batch_norm2d_backward(np.ones_like(y), x, np.ones(C), cache)
        g = fc.global_avg_pool2d(x)
        fc.global_avg_pool2d_backward(np.ones_like(g), x.shape)
    for N, I, O in [(3, 7, 5), (9, 33, 40), (17, 40, 65)]:  # across the micro-kernel's blocks
        x = rng.standard_normal((N, I))
        w = rng.standard_normal((O, I))
        dy = rng.standard_normal((N, O))
        np.testing.assert_allclose(fc.linear(x, w, np.zeros(O)), x @ w.T, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(fc.linear_backward_weight(dy, x), dy.T @ x, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(fc.linear_backward_input(dy, w), dy @ w, rtol=1e-9, atol=1e-9)
    fc.softmax_cross_entropy(x, np.arange(N) % O)
    from fastconv.kernels.cpu import blocks

    print(f"sweep: {n} conv shapes checked, micro-kernel block {blocks.MR}x{blocks.NR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
