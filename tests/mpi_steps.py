"""A few SGD steps of LeNet-5 and of a small residual network with BatchNorm, in float64, data-parallel over
the MPI world (under mpiexec) or in one process: test_distributed.py compares the two.

    mpiexec -n 2 python mpi_steps.py OUT.npz
"""
import sys

import numpy as np

from fastconv import distributed as dist
from fastconv import nn
from fastconv.models import _block, lenet5
from fastconv.optim import SGD

BATCH, STEPS = 8, 3


def small_resnet():
    return nn.Sequential(nn.Conv2D(1, 4, 3, padding=1, bias=False), nn.BatchNorm2D(4), nn.ReLU(), _block(4, 8, 2),
                         nn.GlobalAvgPool2D(), nn.Flatten(), nn.Linear(8, 10))


MODELS = {"lenet5": (lenet5, (1, 28, 28)), "resnet": (small_resnet, (1, 8, 8))}


def run(name):
    """The state dict after STEPS steps; each rank takes every world_size-th image of each global batch."""
    make, shape = MODELS[name]
    nn.manual_seed(0)
    model = make().to(np.float64)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    crit = nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    r, n = dist.rank(), dist.world_size()
    for _ in range(STEPS):
        x, y = rng.standard_normal((BATCH, *shape)), rng.integers(0, 10, BATCH)
        model.zero_grad()
        crit(model(x[r::n]), y[r::n])
        model.backward(crit.backward())
        if n > 1:
            dist.allreduce_gradients(model)
        opt.step()
    return model.state_dict()


if __name__ == "__main__":
    dist.init()
    states = {f"{name}/{k}": v for name in MODELS for k, v in run(name).items()}
    if dist.rank() == 0:
        np.savez(sys.argv[1], **states)
