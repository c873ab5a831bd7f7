"""Containers: Sequential, with the fusions it applies between neighbouring layers."""
from .. import functional as F
from .layers import Conv2D, MaxPool2D, ReLU
from .module import Module


def _fusable(m, nxt):
    return type(m) is Conv2D and type(nxt) is ReLU


def _relu_then_max_pool(m, nxt):
    return type(m) is ReLU and type(nxt) is MaxPool2D and nxt.output is not None


class Sequential(Module):
    """Modules applied in order; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential takes Modules, got {type(m).__name__} at position {i}")
            setattr(self, str(i), m)

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
        i = 0
        while i < len(children):
            m = children[i]
            nxt = children[i + 1] if i + 1 < len(children) else None
            if _fusable(m, nxt):  # Conv2D then ReLU: one pass, the ReLU in the conv's epilogue
                x = m.forward(x, relu=True)
                nxt.keep_for_backward(x)  # relu(y) > 0 exactly where y > 0: its backward needs no more
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
            if i > 0 and _relu_then_max_pool(children[i - 1], m):
                # ReLU then MaxPool2D: the ReLU's mask at each window's winner is (pooled output > 0), so it is
                # applied to the small pooled delta before routing, and the full-size ReLU pass is skipped
                dy = m.backward(F.relu_backward(dy, m.output))
                i -= 2
            else:
                dy = m.backward(dy)
                i -= 1
        return dy
