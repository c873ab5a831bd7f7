"""The CUDA target's whole check: every op against the CPU target, training steps of LeNet-5 and a residual
network on both targets, ``train --device cuda``, arrays of other CUDA libraries; then, on a real GPU, a timing
summary of LeNet-5 and ResNet-20 training steps against the CPU target and PyTorch's CUDA build when present.

    python -m fastconv.benchmarks.cuda_check [--out DIR] [--strict] [--no-timing]

The tests run it in a child process under Numba's simulator (NUMBA_ENABLE_CUDASIM=1, no GPU needed) with small
FASTCONV_CUDA_TPB / FASTCONV_CUDA_MAX_BLOCKS, so tiny inputs span several blocks, and with ``--strict``: every
device array is then a stand-in with only numba-cuda's DeviceNDArray API (``strict_device``). On a GPU the
same command runs the real kernels; results go to DIR/cuda_check.json and .md.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

import fastconv as fc
import fastconv.cuda as fcuda
import fastconv.nn as nn
from fastconv.functional.pool import max_pool2d_backward_own
from fastconv.models import lenet5
from fastconv.optim import SGD, Adam

checked = []


def same(name, got, want, tol=1e-5):
    got = got.copy_to_host() if hasattr(got, "copy_to_host") else got
    assert isinstance(got, np.ndarray) or np.isscalar(got), f"{name}: {type(got).__name__}"
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)
    assert not isinstance(want, np.ndarray) or got.dtype == want.dtype, name
    checked.append(name)


def d(a):
    return fcuda.to_device(a)


def ops(rng, dtype):
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    for kw in (dict(), dict(stride=(2, 1), padding=1, dilation=(1, 2)), dict(padding=2)):
        y = fc.conv2d(x, w, b, **kw)
        same(f"conv2d {kw}", fc.conv2d(d(x), d(w), d(b), **kw), y)
        dy = rng.standard_normal(y.shape).astype(dtype)
        same(f"dx {kw}", fc.conv2d_backward_input(d(dy), d(w), x.shape, **kw), fc.conv2d_backward_input(dy, w, x.shape, **kw))
        same(f"dw {kw}", fc.conv2d_backward_weight(d(dy), d(x), w.shape, **kw), fc.conv2d_backward_weight(dy, x, w.shape, **kw))
        same(f"db {kw}", fc.conv2d_backward_bias(d(dy)), fc.conv2d_backward_bias(dy))
    w1 = rng.standard_normal((1, 3, 3, 3)).astype(dtype)  # one output channel: the direct kernel
    same("conv2d direct", fc.conv2d(d(x), d(w1), padding=1), fc.conv2d(x, w1, padding=1))
    xl, wl = rng.standard_normal((2, 5, 9, 10)).astype(dtype), rng.standard_normal((19, 5, 3, 2)).astype(dtype)
    for kw in (dict(padding=1), dict(stride=2, dilation=(2, 1))):  # several tiles along every axis of the product
        y = fc.conv2d(xl, wl, **kw)
        same(f"conv2d tiles {kw}", fc.conv2d(d(xl), d(wl), **kw), y)
        dy = rng.standard_normal(y.shape).astype(dtype)
        same(f"dx tiles {kw}", fc.conv2d_backward_input(d(dy), d(wl), xl.shape, **kw), fc.conv2d_backward_input(dy, wl, xl.shape, **kw))
        same(f"dw tiles {kw}", fc.conv2d_backward_weight(d(dy), d(xl), wl.shape, **kw), fc.conv2d_backward_weight(dy, xl, wl.shape, **kw))
        xw, ww = rng.standard_normal((2, 19, 9, 10)).astype(dtype), rng.standard_normal((5, 19, 3, 2)).astype(dtype)
        dy = rng.standard_normal(fc.conv2d(xw, ww, **kw).shape).astype(dtype)  # dx onto 19 channels: two row tiles
        same(f"dx of 19 channels {kw}", fc.conv2d_backward_input(d(dy), d(ww), xw.shape, **kw), fc.conv2d_backward_input(dy, ww, xw.shape, **kw))
    for k, s, p in ((2, None, 0), (3, 2, 1), (3, 1, 1)):
        y, idx = fc.max_pool2d(x, k, s, p)
        gy, gidx = fc.max_pool2d(d(x), k, s, p)
        same(f"max_pool {k}{s}{p}", gy, y)
        same(f"max_pool idx {k}{s}{p}", gidx, idx)
        dy = rng.standard_normal(y.shape).astype(dtype)
        want = fc.max_pool2d_backward(dy, idx, x.shape)
        same(f"max_pool_backward {k}{s}{p}", fc.max_pool2d_backward(d(dy), gidx, x.shape), want)
        same(f"max_pool_backward gathered {k}{s}{p}", max_pool2d_backward_own(d(dy), gidx, x.shape, window=dict(
            kernel_size=k, stride=s, padding=p)), want)
        same(f"avg_pool {k}{s}{p}", fc.avg_pool2d(d(x), k, s, p), fc.avg_pool2d(x, k, s, p))
        same(f"avg_pool_backward {k}{s}{p}", fc.avg_pool2d_backward(d(dy), x.shape, k, s, p), fc.avg_pool2d_backward(dy, x.shape, k, s, p))
    for kw in (dict(kernel_size=3, stride=2, padding=1, dilation=2), dict(kernel_size=2, ceil_mode=True)):
        y, idx = fc.max_pool2d(x, **kw)
        same(f"max_pool {kw}", fc.max_pool2d(d(x), **kw)[0], y)
        same(f"max_pool idx {kw}", fc.max_pool2d(d(x), **kw)[1], idx)
        dy = rng.standard_normal(y.shape).astype(dtype)
        same(f"max_pool_backward gathered {kw}", max_pool2d_backward_own(d(dy), fc.max_pool2d(d(x), **kw)[1], x.shape,
             window=kw), fc.max_pool2d_backward(dy, idx, x.shape))
    for kw in (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
               dict(kernel_size=2, padding=((1, 0), (0, 1)))):
        y = fc.avg_pool2d(x, **kw)
        same(f"avg_pool {kw}", fc.avg_pool2d(d(x), **kw), y)
        dy = rng.standard_normal(y.shape).astype(dtype)
        same(f"avg_pool_backward {kw}", fc.avg_pool2d_backward(d(dy), x.shape, **kw), fc.avg_pool2d_backward(dy, x.shape, **kw))
    blocks(rng, dtype)
    for name in ("relu", "tanh", "sigmoid"):
        f, g = getattr(fc, name), getattr(fc, name + "_backward")
        out = f(x)
        same(name, f(d(x)), out)
        arg = x if name == "relu" else out
        same(name + "_backward", g(d(x), d(arg)), g(x, arg))
    a, wl, bl = (rng.standard_normal(s).astype(dtype) for s in ((20, 37), (18, 37), 18))  # 2 x 2 tiles, 3 steps
    dyl = rng.standard_normal((20, 18)).astype(dtype)
    same("linear", fc.linear(d(a), d(wl), d(bl)), fc.linear(a, wl, bl))
    same("linear_backward_input", fc.linear_backward_input(d(dyl), d(wl)), fc.linear_backward_input(dyl, wl))
    same("linear_backward_weight", fc.linear_backward_weight(d(dyl), d(a)), fc.linear_backward_weight(dyl, a))
    same("linear_backward_bias", fc.linear_backward_bias(d(dyl)), fc.linear_backward_bias(dyl))
    labels = rng.integers(0, 18, 20)
    loss, grad = fc.softmax_cross_entropy(dyl, labels)
    gloss, ggrad = fc.softmax_cross_entropy(d(dyl), labels)
    assert abs(gloss - loss) < 1e-6, (gloss, loss)
    same("softmax_cross_entropy", ggrad, grad)


def blocks(rng, dtype):
    """Grouped and depthwise convolution with per-side padding, BatchNorm (fused ReLU, eval form), global
    average pooling and the residual add."""
    x = rng.standard_normal((2, 4, 7, 6)).astype(dtype)
    for K, groups, kw in ((6, 2, dict(padding=1)), (8, 4, dict(stride=2, padding=((1, 0), (0, 2)))),
                          (4, 4, dict(padding="same")), (12, 4, dict(dilation=2, padding=2))):
        w = rng.standard_normal((K, 4 // groups, 3, 3)).astype(dtype)
        y = fc.conv2d(x, w, groups=groups, **kw)
        same(f"grouped conv2d g{groups} {kw}", fc.conv2d(d(x), d(w), groups=groups, **kw), y)
        dy = rng.standard_normal(y.shape).astype(dtype)
        same(f"grouped dx g{groups} {kw}", fc.conv2d_backward_input(d(dy), d(w), x.shape, groups=groups, **kw),
             fc.conv2d_backward_input(dy, w, x.shape, groups=groups, **kw))
        same(f"grouped dw g{groups} {kw}", fc.conv2d_backward_weight(d(dy), d(x), w.shape, groups=groups, **kw),
             fc.conv2d_backward_weight(dy, x, w.shape, groups=groups, **kw))
    wb, bb = rng.uniform(0.5, 1.5, 4).astype(dtype), rng.uniform(-0.5, 0.5, 4).astype(dtype)
    for relu in (False, True):
        y, cache = fc.batch_norm2d(x, wb, bb, relu=relu)
        gy, gcache = fc.batch_norm2d(d(x), d(wb), d(bb), relu=relu)
        same(f"batch_norm relu={relu}", gy, y, tol=1e-4)
        dy = rng.standard_normal(x.shape).astype(dtype)
        for name, g, c in zip(("dx", "dweight", "dbias"), fc.batch_norm2d_backward(d(dy), d(x), d(wb), gcache),
                              fc.batch_norm2d_backward(dy, x, wb, cache)):
            same(f"batch_norm_backward {name} relu={relu}", g, c, tol=1e-4)
    rm, rv = rng.standard_normal(4).astype(dtype), rng.uniform(0.5, 2, 4).astype(dtype)
    same("batch_norm inference", fc.batch_norm2d_inference(d(x), rm, rv, d(wb), d(bb))[0],
         fc.batch_norm2d_inference(x, rm, rv, wb, bb)[0])
    same("global_avg_pool", fc.global_avg_pool2d(d(x)), fc.global_avg_pool2d(x))
    dg = rng.standard_normal((2, 4, 1, 1)).astype(dtype)
    same("global_avg_pool_backward", fc.global_avg_pool2d_backward(d(dg), x.shape), fc.global_avg_pool2d_backward(dg, x.shape))
    same("add", fc.functional.add(d(x), d(x)), x + x)


class ForeignCUDATensor:
    """What a PyTorch CUDA tensor or a CuPy array shows fastconv: ``__cuda_array_interface__`` (version 3,
    with a producer stream) and a ``dtype`` that is not numpy's (``np.dtype(torch.float32)`` raises)."""

    dtype = "torch.float32"

    def __init__(self, host):
        self._host = np.ascontiguousarray(host)  # the simulator's "device memory" is host memory
        self.shape = self._host.shape

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self._host.dtype.str, "data": (self._host.ctypes.data, False),
                "version": 3, "strides": None, "stream": 2}


def interop():
    """Arrays of other CUDA libraries go in through their interface; outputs are Numba device arrays."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = fc.conv2d(ForeignCUDATensor(x), ForeignCUDATensor(w), padding=1)
    same("conv2d of foreign CUDA arrays", y, fc.conv2d(x, w, padding=1))
    assert hasattr(y, "copy_to_host")
    same("relu of a foreign CUDA array", fc.relu(ForeignCUDATensor(x)), fc.relu(x))


def _steps_agree(name, make, x, y, opt_cls, **kw):
    """Two training steps of the same network on each target from the same weights: the losses and the new
    parameters and buffers agree."""
    nn.manual_seed(0)
    cpu, gpu = make(), make()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    losses = []
    for model in (cpu, gpu):
        opt, crit = opt_cls(model.parameters(), **kw), nn.CrossEntropyLoss()
        for _ in range(2):
            model.zero_grad()
            losses.append(crit(model(fcuda.to_device(x) if model is gpu else x), y))
            model.backward(crit.backward())
            opt.step()
    assert abs(losses[0] - losses[2]) < 1e-5 and abs(losses[1] - losses[3]) < 1e-5, losses
    g = gpu.state_dict()
    for k, v in cpu.state_dict().items():
        same(f"{name} {opt_cls.__name__} {k}", g[k], v, tol=1e-4)
    back = gpu.to("cpu")
    assert all(isinstance(p.data, np.ndarray) for p in back.parameters())


def resnet_step():
    """A small residual network with BatchNorm: the running statistics agree too."""
    from fastconv.models import _block

    def net():
        return nn.Sequential(nn.Conv2D(1, 4, 3, padding=1, bias=False), nn.BatchNorm2D(4), nn.ReLU(), _block(4, 8, 2),
                             nn.GlobalAvgPool2D(), nn.Flatten(), nn.Linear(8, 3))

    rng = np.random.default_rng(3)
    _steps_agree("resnet block", net, rng.standard_normal((3, 1, 6, 6)).astype(np.float32), np.array([0, 2, 1]), SGD,
                 lr=0.1, momentum=0.9)


def onnx_graph_step(tmp):
    """An imported ONNX DAG (branches, Add, a bias Add, Reshape, MatMul) trains on the device as on the host."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        checked.append("onnx graph: skipped (onnx not installed)")
        return
    from fastconv import onnx as fo

    rng = np.random.default_rng(6)
    inits = {"w1": (4, 1, 3, 3), "w2": (4, 4, 3, 3), "fw": (4, 3), "fb": (3,)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Add", ["c", "r"], ["s"]),
             helper.make_node("GlobalAveragePool", ["s"], ["g"]), helper.make_node("Reshape", ["g", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "fw"], ["m"]), helper.make_node("Add", ["m", "fb"], ["y"])]
    tensors = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), k) for k, s in inits.items()]
    tensors.append(numpy_helper.from_array(np.array([0, -1], np.int64), "shape"))
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("x", "y")]
    model = helper.make_model(helper.make_graph(nodes, "dag", io[:1], io[1:], tensors),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = f"{tmp}/dag.onnx"
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    x = rng.standard_normal((3, 1, 6, 6)).astype(np.float32)
    _steps_agree("onnx graph", lambda: fo.load(path).train(), x, np.array([0, 2, 1]), SGD, lr=0.1, momentum=0.9)


def lenet_step(opt_cls, **kw):
    rng = np.random.default_rng(1)
    _steps_agree("lenet5", lenet5, rng.standard_normal((2, 1, 28, 28)).astype(np.float32), np.array([3, 8]), opt_cls, **kw)


def epoch_tally():
    """The GPU training loop's device-side losses and hits (fastconv.cuda.EpochTally) against the host loss."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 5, 13)
    tally = fcuda.EpochTally(labels)
    total, hits = 0.0, 0
    for start, stop in ((0, 8), (8, 13)):
        logits = rng.standard_normal((stop - start, 5)).astype(np.float32)
        loss, grad = fc.softmax_cross_entropy(logits, labels[start:stop])
        same(f"tally gradient rows {start}-{stop}", tally.batch(d(logits), start), grad)
        total += loss * (stop - start)
        hits += int(np.sum(np.argmax(logits, axis=1) == labels[start:stop]))
    got = tally.read(13)
    assert abs(got[0] - total) < 1e-5 and got[1] == hits, (got, total, hits)
    try:
        fcuda.EpochTally(np.array([0, 5])).batch(d(np.zeros((2, 5), np.float32)), 0)
        raise AssertionError("a label of 5 for 5 classes was accepted")
    except ValueError as e:
        assert "[0, 5)" in str(e), e
    checked.append("epoch tally")


def train_on_device(tmp):
    """`fastconv train --device cuda` end to end on a tiny split: runs, evaluates, checkpoints host arrays."""
    from fastconv import checkpoint, data
    from fastconv.train import TrainConfig, train

    rng = np.random.default_rng(2)
    split = data.Split(rng.integers(0, 256, (16, 28, 28), dtype=np.uint8), rng.integers(0, 10, 16),
                       rng.integers(0, 256, (8, 28, 28), dtype=np.uint8), rng.integers(0, 10, 8), "tiny")
    r = train(TrainConfig(epochs=1, batch_size=8, out=tmp, device="cuda", progress=False), split=split, log=lambda *a: None)
    assert 0.0 <= r.test_accuracy <= 1.0 and len(r.epochs) == 1
    back = checkpoint.load(f"{tmp}/last.npz")
    assert all(isinstance(v, np.ndarray) for v in back.model.state_dict().values())
    checked.append("train --device cuda")


def _lock_simulator_shared_arrays():
    """The simulator gives a block's threads one shared array per source line, looked up and created without a
    lock: two threads that reach ``cuda.shared.array`` together can each create their own, and a tile is then
    not shared (a rare wrong result, more frequent with frequent thread switches). The same lookup, under a
    lock."""
    import threading

    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    lock = threading.Lock()
    plain = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:
            return plain(self, shape, dtype, alignment)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                dt = numpy_support.as_dtype(dtype) if isinstance(dtype, types.Type) else dtype
                res = self._allocations[caller] = np.empty(shape, dt)
        return res

    kernelapi.FakeCUDAShared.array = array


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastconv.benchmarks.cuda_check")
    p.add_argument("--out", help="folder for cuda_check.json and cuda_check.md")
    p.add_argument("--strict", action="store_true", help="every device array as the strict DeviceNDArray stand-in")
    p.add_argument("--no-timing", action="store_true", help="the checks only")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    assert fcuda.is_available(), fcuda.describe()
    if fcuda.simulated():
        # The simulator runs a block's threads as Python threads; at every barrier of a tiled kernel each
        # waits for the others to get the GIL, by default 5 ms apart: switching more often makes the
        # tiled kernels ten times faster there.
        sys.setswitchinterval(1e-4)
        _lock_simulator_shared_arrays()
    if args.strict:
        from fastconv.benchmarks import strict_device

        strict_device.install()
        assert isinstance(fcuda.to_device(np.zeros(2)), strict_device.StrictDeviceArray)
        checked.append("strict stand-in installed")
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        ops(rng, dtype)
    lenet_step(SGD, lr=0.1, momentum=0.9)
    lenet_step(Adam, lr=1e-3)
    resnet_step()
    interop()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        onnx_graph_step(tmp)
        epoch_tally()
        train_on_device(tmp)
    print(f"cuda check: {len(checked)} comparisons passed")
    report = {"device": fcuda.describe(), "comparisons": len(checked)}
    if not args.no_timing and not fcuda.simulated():
        from fastconv.benchmarks.cuda_timing import timings

        report["timings"] = timings()
        for r in report["timings"]:
            print(json.dumps(r))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "cuda_check.json").write_text(json.dumps(report, indent=1))
        lines = [f"{report['device']}: {report['comparisons']} comparisons passed", ""]
        if "timings" in report:
            lines += ["| model | batch | fastconv cuda img/s | fastconv cpu img/s | torch cuda img/s |", "| --- | ---: | ---: | ---: | ---: |"]
            lines += [f"| {r['model']} | {r['batch']} | {r['fastconv_cuda']:,.0f} | {r['fastconv_cpu']:,.0f} | "
                      + (f"{r['torch_cuda']:,.0f}" if r["torch_cuda"] else "-") + " |" for r in report["timings"]]
        (out / "cuda_check.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
