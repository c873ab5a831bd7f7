"""Optimizers with PyTorch's update rules (the same gradients give the same steps)."""
import numpy as np

from . import functional as F
from ._backend import backend_for
from ._checks import to_host


class Optimizer:
    """Holds a list of Parameters, a learning rate ``lr`` (schedules set it) and per-parameter state."""

    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("params must hold at least one Parameter, got none")
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        self.lr = float(lr)
        self.state = [{} for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def _zeros_like(self, p):
        return backend_for(p.data).zeros(p.shape, p.dtype)

    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self._update(p, self.state[i])

    def state_dict(self):
        """Plain data: hyperparameters and, for each parameter, its numpy state arrays and counters."""
        return {
            "hyper": dict(self.hyper(), lr=self.lr),
            "state": [{k: to_host(v, copy=True) if hasattr(v, "shape") else v for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, sd):
        """Restore what :meth:`state_dict` gave; every shape is checked before anything changes."""
        state = sd["state"]
        if len(state) != len(self.params):
            raise ValueError(f"optimizer state has {len(state)} parameters, this optimizer has {len(self.params)}")
        for i, (s, p) in enumerate(zip(state, self.params)):
            for k, v in s.items():
                if hasattr(v, "shape") and tuple(v.shape) != p.shape:
                    raise ValueError(f"optimizer state {i}.{k} has shape {tuple(v.shape)}, parameter has {p.shape}")
        be = lambda p: backend_for(p.data)  # noqa: E731
        self.state = [
            {k: be(p).asarray(np.asarray(v, p.dtype)) if hasattr(v, "shape") else v for k, v in s.items()}
            for s, p in zip(state, self.params)
        ]
        for k, v in sd["hyper"].items():
            setattr(self, k, v)


class SGD(Optimizer):
    """SGD with momentum, dampening, Nesterov momentum and L2 weight decay (torch.optim.SGD's rule)."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"momentum and weight_decay must be >= 0, got {momentum} and {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening 0")
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.nesterov, self.dampening = bool(nesterov), float(dampening)

    def hyper(self):
        return dict(momentum=self.momentum, weight_decay=self.weight_decay, nesterov=self.nesterov,
                    dampening=self.dampening)

    def _update(self, p, s):
        if self.momentum == 0:  # no state: the buffer argument is never read
            buf, first = backend_for(p.data).zeros((0,), p.dtype), True
        else:
            first = "momentum_buffer" not in s
            if first:
                s["momentum_buffer"] = self._zeros_like(p)
            buf = s["momentum_buffer"]
        F.sgd_update(p.data, p.grad, buf, self.lr, self.momentum, self.dampening, self.weight_decay, self.nesterov,
                     first)


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (torch.optim.Adam's rule)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"eps and weight_decay must be >= 0, got {eps} and {weight_decay}")
        self.betas, self.eps, self.weight_decay = (float(b1), float(b2)), float(eps), float(weight_decay)

    def hyper(self):
        return dict(betas=list(self.betas), eps=self.eps, weight_decay=self.weight_decay)

    def load_state_dict(self, sd):
        super().load_state_dict(sd)
        self.betas = tuple(self.betas)

    def _update(self, p, s):
        if "step" not in s:
            s["step"], s["exp_avg"], s["exp_avg_sq"] = 0, self._zeros_like(p), self._zeros_like(p)
        s["step"] += 1
        F.adam_update(p.data, p.grad, s["exp_avg"], s["exp_avg_sq"], self.lr, self.betas[0], self.betas[1],
                      self.eps, self.weight_decay, s["step"])


OPTIMIZERS = {"sgd": SGD, "adam": Adam}
