"""When PyTorch is importable (never a requirement), lenet5 and the same PyTorch network agree."""
import numpy as np
import pytest

import fastconv.nn as nn
from fastconv.models import lenet5
from fastconv.optim import SGD, Adam

torch = pytest.importorskip("torch")
from fastconv.benchmarks.peers import torch_lenet5  # noqa: E402


def _pair():
    nn.manual_seed(5)
    ours = lenet5().to(np.float64)
    theirs = torch_lenet5().double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})  # no reshaping
    return ours, theirs


def _batch(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 1, 28, 28)), rng.integers(0, 10, 6)


def test_forward_and_gradients_agree():
    ours, theirs = _pair()
    ours.set_input_grad(True)
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


def test_resnet20_state_dict_keys_and_sgd_steps_agree():
    """The same keys in the same order as the PyTorch network, and three SGD steps in float64 (training mode)
    give the same loss, every gradient and the running statistics."""
    from fastconv.models import resnet20

    nn.manual_seed(7)
    ours = resnet20(num_classes=10, in_channels=3).to(np.float64)
    from fastconv.benchmarks.peers import torch_resnet20

    theirs = torch_resnet20().double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    opt = SGD(ours.parameters(), 0.05, momentum=0.9, weight_decay=1e-4)
    topt = torch.optim.SGD(theirs.parameters(), 0.05, momentum=0.9, weight_decay=1e-4)
    crit = nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    for step in range(3):
        x, y = rng.standard_normal((4, 3, 16, 16)), rng.integers(0, 10, 4)
        ours.zero_grad()
        loss = crit(ours(x), y)
        ours.backward(crit.backward())
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        assert loss == pytest.approx(tloss.item(), rel=1e-10), step
        tgrads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
        for k, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad, tgrads[k], rtol=1e-7, atol=1e-10, err_msg=f"step {step}: {k}")
        opt.step()
        topt.step()
    tstate = theirs.state_dict()
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v, tstate[k].numpy(), rtol=1e-9, atol=1e-12, err_msg=k)
