"""The timing summary of ``cuda_check`` on a real GPU: LeNet-5 and ResNet-20 training steps at batch 64 and
256, fastconv on the GPU and on the CPU, and PyTorch's CUDA build when installed. Each engine runs the loop a
user writes (fastconv's reads the loss every step, as ``crit(...)`` returns a float)."""
import time

import numpy as np

import fastconv.cuda as fcuda
import fastconv.nn as nn
from fastconv.models import lenet5
from fastconv.optim import SGD


def _step(model, x, y, train):
    """One training step (SGD) or inference pass, as a zero-argument function."""
    crit, opt = nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        if train:
            model.zero_grad()
            crit(model(x), y)
            model.backward(crit.backward())
            opt.step()
        else:
            model(x)
    return step


def _ms(fn, reps):
    fn()
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    fcuda.synchronize()
    return 1000 * (time.perf_counter() - t) / reps


def timings(reps=20):
    """Images per second of LeNet-5 and ResNet-20 training steps at batch 64 and 256: fastconv on the GPU and
    the CPU, and PyTorch on the GPU when it has a CUDA build."""
    from fastconv.models import resnet20

    rows = []
    for name, make, shape in (("lenet5", lenet5, (1, 28, 28)), ("resnet20", resnet20, (3, 32, 32))):
        for batch in (64, 256):
            rng = np.random.default_rng(0)
            x, y = rng.standard_normal((batch, *shape)).astype(np.float32), rng.integers(0, 10, batch)
            row = {"model": name, "batch": batch}
            nn.manual_seed(0)
            gpu = make().to("cuda").set_input_grad(False)
            row["fastconv_cuda"] = batch / (_ms(_step(gpu, fcuda.to_device(x), y, True), reps) / 1000)
            nn.manual_seed(0)
            row["fastconv_cpu"] = batch / (_ms(_step(make().set_input_grad(False), x, y, True), max(2, reps // 10)) / 1000)
            row["torch_cuda"] = _torch_cuda(name, x, y, reps)
            rows.append(row)
    return rows


def _torch_cuda(name, x, y, reps):
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    from fastconv.benchmarks.peers import torch_lenet5, torch_resnet20

    model = (torch_lenet5() if name == "lenet5" else torch_resnet20()).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(tx), ty).backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        step()
    torch.cuda.synchronize()
    return len(y) / ((time.perf_counter() - t) / reps)
