"""Containers: Sequential, with the fusions it applies between neighbouring layers, and Residual."""
import numpy as np

from .. import functional as F
from .layers import Conv2D, MaxPool2D, ReLU
from .module import Module
from .norm import BatchNorm2D


def _relu_then_max_pool(m, nxt):
    return type(m) is ReLU and type(nxt) is MaxPool2D and nxt.output is not None


def _foldable(m, nxt):
    """A Conv2D on the CPU followed by a BatchNorm2D in eval mode: the normalisation is an affine map per
    channel, folded into the convolution's weights and bias."""
    return (type(m) is Conv2D and type(nxt) is BatchNorm2D and not nxt.training
            and isinstance(m.weight.data, np.ndarray))


class Sequential(Module):
    """Modules applied in order; children are named "0", "1", ... as in PyTorch.

    A Sequential is a network: as in PyTorch, where no gradient is computed for an input that does not ask
    for one, ``backward`` computes no gradient with respect to its input (the images) and returns None, unless
    asked with ``set_input_grad(True)``; then it returns dx. (Its first layer skips that work: the input
    gradient of a first convolution is about half of its backward pass.) Containers ask it of the containers
    they hold wherever the gradient flows on: a Sequential of every child but its first, a Residual of both
    branches.

    Fusions: a Conv2D followed by a ReLU runs the ReLU in the convolution's epilogue, a Residual followed by a
    ReLU in the pass that adds its branches (the ReLU's backward then reads that output); a BatchNorm2D followed by a ReLU applies the ReLU inside the normalisation,
    forward and backward (the ReLU is skipped both ways); a ReLU followed by a MaxPool2D applies the ReLU's
    mask to the small pooled delta. In eval mode on the CPU a Conv2D followed by a BatchNorm2D (and a ReLU)
    runs as one convolution whose weights and bias have the normalisation folded in (a backward pass after
    such a forward first recomputes what the BatchNorm2D needs)."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential takes Modules, got {type(m).__name__} at position {i}")
            setattr(self, str(i), m)
            if i > 0:
                m.set_input_grad(True)  # its dx is the delta of the layer before it
        self._bn_relu = set()  # indices of the BatchNorm2D layers that ran with their ReLU in the last forward
        self._folded = set()  # indices of the BatchNorm2D layers folded into the Conv2D before them
        self.set_input_grad(False)

    def __len__(self):
        return len(self._children)

    def __getitem__(self, i):
        return list(self._children.values())[i]

    def __iter__(self):
        return iter(self._children.values())

    def set_input_grad(self, flag):
        """Passed on to the first child, the only one whose dx is the network's dx."""
        super().set_input_grad(flag)
        if self._children:
            self[0].set_input_grad(flag)
        return self

    def forward(self, x):
        children = list(self._children.values())
        self._bn_relu, self._folded = set(), set()
        i = 0
        while i < len(children):
            m = children[i]
            nxt = children[i + 1] if i + 1 < len(children) else None
            if _foldable(m, nxt):
                relu = i + 2 < len(children) and type(children[i + 2]) is ReLU
                x = m.forward_affine(x, *nxt.affine(), relu=relu)
                self._folded.add(i + 1)
                if relu:
                    children[i + 2].keep_for_backward(x)
                i += 3 if relu else 2
            elif type(nxt) is ReLU and type(m) in (Conv2D, Residual):  # the ReLU in the conv's epilogue, or the add's
                x = m.forward(x, relu=True)
                nxt.keep_for_backward(x)  # relu(y) > 0 exactly where y > 0: its backward needs no more
                i += 2
            elif type(nxt) is ReLU and type(m) is BatchNorm2D:
                x = m.forward(x, relu=True)
                self._bn_relu.add(i)
                i += 2
            else:
                x = m(x)
                i += 1
        return x

    def backward(self, dy):
        children = list(self._children.values())
        i = len(children) - 1
        while i >= 0:
            m = children[i]
            if i in self._folded:  # folded into the conv before it: its forward runs now, for its cache
                conv = children[i - 1]
                m.forward(conv.forward(conv._x))
                self._folded.discard(i)
                continue
            if i > 0 and i - 1 in self._bn_relu:  # the ReLU ran inside the BatchNorm2D before it
                dy = children[i - 1].backward(dy)
                i -= 2
            elif i > 0 and _relu_then_max_pool(children[i - 1], m):
                # ReLU then MaxPool2D: the ReLU's mask at each window's winner is (pooled output > 0), so it is
                # applied to the small pooled delta before routing, and the full-size ReLU pass is skipped
                dy = m.backward(F.relu_backward(dy, m.output))
                i -= 2
            else:
                dy = m.backward(dy)
                i -= 1
        return dy if self.input_grad else None


class Residual(Module):
    """``y = body(x) + shortcut(x)``, or ``body(x) + x`` without a shortcut; backward sends dy through both
    branches and adds the two input gradients. Children are named ``body`` and ``shortcut``."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        for name, m in (("body", body), ("shortcut", shortcut)):
            if m is not None and not isinstance(m, Module):
                raise TypeError(f"Residual's {name} must be a Module, got {type(m).__name__}")
        if body is None:
            raise TypeError("Residual needs a body Module")
        self.body = body.set_input_grad(True)  # both branches' input gradients are summed
        shortcut = None if shortcut is None else shortcut.set_input_grad(True)
        if shortcut is not None:
            self.shortcut = shortcut
        else:
            object.__setattr__(self, "shortcut", None)

    def forward(self, x, relu=False):
        """With ``relu``, the ReLU that follows is applied in the same pass as the add (Sequential does this)."""
        y = self.body(x)
        s = x if self.shortcut is None else self.shortcut(x)
        if tuple(y.shape) != tuple(s.shape):
            what = "the input" if self.shortcut is None else "the shortcut"
            raise ValueError(f"Residual: the body returns shape {tuple(y.shape)} but {what} has shape "
                             f"{tuple(s.shape)}; they must match to be added")
        return F.add(y, s, relu)

    def backward(self, dy):
        dx = self.body.backward(dy)
        ds = dy if self.shortcut is None else self.shortcut.backward(dy)
        return F.add(dx, ds)
