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
    Cg = case.C // case.groups
    w = (rng.standard_normal((case.K, Cg, case.R, case.S)) / np.sqrt(Cg * case.R * case.S)).astype(np.float32)
    b = rng.standard_normal(case.K).astype(np.float32)
    dy = rng.standard_normal((case.N, case.K, P, Q)).astype(np.float32)
    return x, w, b, dy


def norm_inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((case.N, case.C, case.H, case.W)) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    return x, rng.uniform(0.5, 1.5, case.C).astype(np.float32), rng.uniform(-0.5, 0.5, case.C).astype(np.float32), dy


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
        kw = dict(stride=case.stride, padding=case.padding, groups=case.groups)
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

    def norm(self, case, which):
        """BatchNorm2D in training mode: the forward (statistics and normalisation), or the backward."""
        from fastconv.functional import norm as FN

        x, w, b, dy = norm_inputs(case)
        _, cache = FN.batch_norm2d(x, w, b)
        return {
            "forward": lambda: FN.batch_norm2d(x, w, b)[0],
            "backward": lambda: FN.batch_norm2d_backward(dy, x, w, cache)[0],
        }[which]


class Im2col:
    name = "im2col"

    def norm(self, case, which):
        return None  # (not an im2col op)

    def conv(self, case, which):
        """The textbook lowering; with groups, one lowering per group on its slices of the channels."""
        x, w, b, dy = conv_inputs(case)
        kw = dict(stride=(case.stride,) * 2, padding=(case.padding,) * 2)
        G, Cg, Kg = case.groups, case.C // case.groups, case.K // case.groups
        xs = [x[:, g * Cg : (g + 1) * Cg] for g in range(G)]
        ws = [w[g * Kg : (g + 1) * Kg] for g in range(G)]
        dys = [dy[:, g * Kg : (g + 1) * Kg] for g in range(G)]
        per_group = {
            "forward": lambda g: im2col.conv2d(xs[g], ws[g], b[g * Kg : (g + 1) * Kg], **kw),
            "dx": lambda g: im2col.conv2d_backward_input(dys[g], ws[g], xs[g].shape, **kw),
            "dw": lambda g: im2col.conv2d_backward_weight(dys[g], xs[g], ws[g].shape, **kw),
        }[which]
        axis = 0 if which == "dw" else 1
        return (lambda: per_group(0)) if G == 1 else (lambda: np.concatenate([per_group(g) for g in range(G)], axis))

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
        s, p, g = [case.stride] * 2, [case.padding] * 2, case.groups

        def backward(mask):
            return t.ops.aten.convolution_backward(dy, x, w, None, s, p, [1, 1], False, [0, 0], g, mask)

        with t.no_grad():
            return {
                "forward": lambda: t.nn.functional.conv2d(x, w, b, s, p, 1, g).numpy(),
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

    def norm(self, case, which):
        """BatchNorm2d in training mode: its native forward, or its native backward."""
        t = self.torch
        x, w, b, dy = (t.from_numpy(a) for a in norm_inputs(case))
        rm, rv = t.zeros(case.C), t.ones(case.C)
        with t.no_grad():
            _, mean, invstd = t.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)
            return {
                "forward": lambda: t.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)[0].numpy(),
                "backward": lambda: t.ops.aten.native_batch_norm_backward(dy, x, w, rm, rv, mean, invstd, True, 1e-5,
                                                                         [True, True, True])[0].numpy(),
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


def torch_lenet5():
    T = __import__("torch").nn
    return T.Sequential(T.Conv2d(1, 6, 5, padding=2), T.ReLU(), T.MaxPool2d(2), T.Conv2d(6, 16, 5), T.ReLU(),
                        T.MaxPool2d(2), T.Flatten(), T.Linear(400, 120), T.ReLU(), T.Linear(120, 84), T.ReLU(),
                        T.Linear(84, 10))


def torch_resnet20(num_classes=10, in_channels=3):
    """``fastconv.models.resnet20`` built in PyTorch: the same structure and state-dict keys."""
    import torch

    T = torch.nn

    class Residual(T.Module):
        def __init__(self, body, shortcut=None):
            super().__init__()
            self.body, self.shortcut = body, shortcut

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

    def block(cin, cout, s):
        body = T.Sequential(T.Conv2d(cin, cout, 3, stride=s, padding=1, bias=False), T.BatchNorm2d(cout), T.ReLU(),
                            T.Conv2d(cout, cout, 3, padding=1, bias=False), T.BatchNorm2d(cout))
        sc = None if s == 1 and cin == cout else T.Sequential(T.Conv2d(cin, cout, 1, stride=s, bias=False),
                                                                T.BatchNorm2d(cout))
        return T.Sequential(Residual(body, sc), T.ReLU())

    return T.Sequential(
        T.Conv2d(in_channels, 16, 3, padding=1, bias=False), T.BatchNorm2d(16), T.ReLU(),
        block(16, 16, 1), block(16, 16, 1), block(16, 16, 1), block(16, 32, 2), block(32, 32, 1), block(32, 32, 1),
        block(32, 64, 2), block(64, 64, 1), block(64, 64, 1), T.AdaptiveAvgPool2d(1), T.Flatten(),
        T.Linear(64, num_classes))


def onnxruntime_available():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnxruntime_inference(model, x, threads):
    """A function that runs ``model`` exported to ONNX through onnxruntime's CPU provider on ``x``, with
    ``threads`` intra-op threads that sleep (do not spin) between runs, like every engine's pool here."""
    import tempfile

    import onnxruntime as ort

    from fastconv import onnx as fo

    with tempfile.TemporaryDirectory() as tmp:
        fo.export(model, f"{tmp}/m.onnx", x.shape)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(f"{tmp}/m.onnx", opts, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"input": x})
