"""Every engine behind one interface: ``conv(case, pass)`` and ``pool(case, pass)`` return a zero-argument
callable that computes that pass on inputs prepared once (so a timer measures only the kernel), and the
callable's result is comparable across engines."""
import numpy as np

import fastconv as fc

from . import im2col


def conv_inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    P, Q = case.out
    x = rng.standard_normal((case.N, case.C, case.H, case.W)).astype(np.float32)
    w = (rng.standard_normal((case.K, case.C, case.R, case.S)) / np.sqrt(case.C * case.R * case.S)).astype(np.float32)
    b = rng.standard_normal(case.K).astype(np.float32)
    dy = rng.standard_normal((case.N, case.K, P, Q)).astype(np.float32)
    return x, w, b, dy


def pool_inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.N, case.C, case.H, case.W)).astype(np.float32)
    P, Q = (case.H - case.k) // case.s + 1, (case.W - case.k) // case.s + 1
    dy = rng.standard_normal((case.N, case.C, P, Q)).astype(np.float32)
    return x, dy


class FastConv:
    name = "fastconv"

    def conv(self, case, which):
        x, w, b, dy = conv_inputs(case)
        kw = dict(stride=case.stride, padding=case.padding)
        return {
            "forward": lambda: fc.conv2d(x, w, b, **kw),
            "dx": lambda: fc.conv2d_backward_input(dy, w, x.shape, **kw),
            "dw": lambda: fc.conv2d_backward_weight(dy, x, w.shape, **kw),
        }[which]

    def pool(self, case, which):
        x, dy = pool_inputs(case)
        _, idx = fc.max_pool2d(x, case.k, case.s)
        return {
            "max_forward": lambda: fc.max_pool2d(x, case.k, case.s)[0],
            "max_backward": lambda: fc.max_pool2d_backward(dy, idx, x.shape),
            "avg_forward": lambda: fc.avg_pool2d(x, case.k, case.s),
            "avg_backward": lambda: fc.avg_pool2d_backward(dy, x.shape, case.k, case.s),
        }[which]


class Im2col:
    name = "im2col"

    def conv(self, case, which):
        x, w, b, dy = conv_inputs(case)
        kw = dict(stride=(case.stride,) * 2, padding=(case.padding,) * 2)
        return {
            "forward": lambda: im2col.conv2d(x, w, b, **kw),
            "dx": lambda: im2col.conv2d_backward_input(dy, w, x.shape, **kw),
            "dw": lambda: im2col.conv2d_backward_weight(dy, x, w.shape, **kw),
        }[which]

    def pool(self, case, which):
        x, dy = pool_inputs(case)
        _, idx = im2col.max_pool2d(x, case.k, case.s)
        return {
            "max_forward": lambda: im2col.max_pool2d(x, case.k, case.s)[0],
            "max_backward": lambda: im2col.max_pool2d_backward(dy, idx, x.shape),
            "avg_forward": lambda: im2col.avg_pool2d(x, case.k, case.s),
            "avg_backward": lambda: im2col.avg_pool2d_backward(dy, x.shape, case.k, case.s),
        }[which]


class Torch:
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch

    def conv(self, case, which):
        t = self.torch
        x, w, b, dy = (t.from_numpy(a) for a in conv_inputs(case))
        s, p = [case.stride] * 2, [case.padding] * 2

        def backward(mask):
            return t.ops.aten.convolution_backward(dy, x, w, None, s, p, [1, 1], False, [0, 0], 1, mask)

        with t.no_grad():
            return {
                "forward": lambda: t.nn.functional.conv2d(x, w, b, s, p).numpy(),
                "dx": lambda: backward([True, False, False])[0].numpy(),
                "dw": lambda: backward([False, True, False])[1].numpy(),
            }[which]

    def pool(self, case, which):
        t = self.torch
        x, dy = (t.from_numpy(a) for a in pool_inputs(case))
        k, s = [case.k] * 2, [case.s] * 2
        _, idx = t.nn.functional.max_pool2d(x, k, s, return_indices=True)
        aten = t.ops.aten
        return {
            "max_forward": lambda: t.nn.functional.max_pool2d(x, k, s).numpy(),
            "max_backward": lambda: aten.max_pool2d_with_indices_backward(dy, x, k, s, [0, 0], [1, 1], False, idx).numpy(),
            "avg_forward": lambda: t.nn.functional.avg_pool2d(x, k, s).numpy(),
            "avg_backward": lambda: aten.avg_pool2d_backward(dy, x, k, s, [0, 0], False, True, None).numpy(),
        }[which]


def engines(with_torch=True):
    """fastconv first, then its peers: im2col always, PyTorch when importable."""
    out = [FastConv(), Im2col()]
    if with_torch:
        try:
            out.append(Torch())
        except ImportError:
            pass
    return out


def set_threads(n, blas_limiter=None):
    """Pin every engine to ``n`` threads: Numba, BLAS (through threadpoolctl, when installed), PyTorch."""
    fc.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n, user_api="blas")


def assert_same(result, reference, what):
    """Results of two engines agree to float32 accuracy relative to the reference's scale."""
    result, reference = np.asarray(result), np.asarray(reference)
    assert result.shape == reference.shape, f"{what}: shape {result.shape} != {reference.shape}"
    scale = float(np.max(np.abs(reference))) or 1.0
    err = float(np.max(np.abs(result - reference))) / scale
    assert err < 1e-4, f"{what}: max error {err:.2e} of the reference's scale"
