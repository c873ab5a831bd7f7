"""When PyTorch is importable (never a requirement), lenet5 and the same PyTorch network agree."""
import numpy as np
import pytest

import fastconv.nn as nn
from fastconv.models import lenet5
from fastconv.optim import SGD, Adam

torch = pytest.importorskip("torch")


def _torch_lenet():
    T = torch.nn
    return T.Sequential(
        T.Conv2d(1, 6, 5, padding=2), T.ReLU(), T.MaxPool2d(2), T.Conv2d(6, 16, 5), T.ReLU(), T.MaxPool2d(2),
        T.Flatten(), T.Linear(400, 120), T.ReLU(), T.Linear(120, 84), T.ReLU(), T.Linear(84, 10),
    ).double()


def _pair():
    nn.manual_seed(5)
    ours = lenet5().to(np.float64)
    theirs = _torch_lenet()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})  # no reshaping
    return ours, theirs


def _batch(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 1, 28, 28)), rng.integers(0, 10, 6)


def test_forward_and_gradients_agree():
    ours, theirs = _pair()
    x, y = _batch(0)
    crit = nn.CrossEntropyLoss()
    loss = crit(ours(x), y)
    dx = ours.backward(crit.backward())
    tx = torch.from_numpy(x).requires_grad_()
    tloss = torch.nn.functional.cross_entropy(theirs(tx), torch.from_numpy(y))
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    tgrads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
    for k, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, tgrads[k], rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.parametrize(
    "ours_opt, torch_opt",
    [
        (lambda p: SGD(p, 0.05, momentum=0.9, weight_decay=1e-3, nesterov=True),
         lambda p: torch.optim.SGD(p, 0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)),
        (lambda p: Adam(p, 1e-3, weight_decay=1e-4), lambda p: torch.optim.Adam(p, 1e-3, weight_decay=1e-4)),
    ],
)
def test_optimizer_steps_agree(ours_opt, torch_opt):
    ours, theirs = _pair()
    a, b = ours_opt(ours.parameters()), torch_opt(theirs.parameters())
    crit = nn.CrossEntropyLoss()
    for step in range(4):
        x, y = _batch(step + 1)
        ours.zero_grad()
        crit(ours(x), y)
        ours.backward(crit.backward())
        a.step()
        b.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        b.step()
    tstate = theirs.state_dict()
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v, tstate[k].numpy(), rtol=1e-8, atol=1e-10, err_msg=k)
