"""Throughput of data-parallel training on one machine: the same global batch on 1 rank with every core, or on
N ranks with cores / N threads each, and the cost of the gradient allreduce per step.

    python -m fastconv.benchmarks.mpi_scale                 # 1 rank
    mpiexec -n 2 python -m fastconv.benchmarks.mpi_scale    # 2 ranks

Each rank times training steps of LeNet-5 (global batch 256) and ResNet-20 (global batch 64, 3x32x32) in the
plain loop plus ``allreduce_gradients``, and the allreduce alone; rank 0 prints one JSON line per model.
"""
import json
import sys
import time

import numpy as np

from fastconv import distributed as dist
from fastconv import models, nn, optim, set_num_threads

CASES = (("lenet5", 256, (1, 28, 28)), ("resnet20", 64, (3, 32, 32)))


def _median_s(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        dist.comm().Barrier()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    dist.init()
    threads = dist.default_threads()  # (a collective: called on every rank, once)
    set_num_threads(threads)
    r, n = dist.rank(), dist.world_size()
    for name, batch, shape in CASES:
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((batch, *shape)).astype(np.float32), rng.integers(0, 10, batch)
        xl, yl = x[r::n], y[r::n]
        nn.manual_seed(0)
        model, crit = getattr(models, name)(), nn.CrossEntropyLoss()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            model.zero_grad()
            crit(model(xl), yl)
            model.backward(crit.backward())
            dist.allreduce_gradients(model)
            opt.step()

        reps = 20 if name == "lenet5" else 5
        step_s = _median_s(step, reps)
        allreduce_s = _median_s(lambda: dist.allreduce_gradients(model), 50)
        grad_bytes = sum(p.data.nbytes for p in model.parameters())
        if r == 0:
            print(json.dumps({"model": name, "global_batch": batch, "ranks": n, "threads_per_rank": threads,
                              "images_per_second": batch / step_s, "step_ms": 1000 * step_s,
                              "allreduce_ms": 1000 * allreduce_s, "allreduce_share": allreduce_s / step_s,
                              "gradient_bytes": grad_bytes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
