"""Parameter and Module: the bookkeeping every layer shares."""
from collections import OrderedDict

import numpy as np

from .. import functional as F
from .._checks import is_device_array, to_host


class Parameter:
    """A trainable array ``data`` with its accumulated gradient ``grad`` (None until a backward pass)."""

    def __init__(self, data):
        self.data = data
        self.grad = None

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return np.dtype(self.data.dtype)

    def accumulate(self, g):
        """grad += g (the first gradient is taken as it is)."""
        if self.grad is None:
            self.grad = g
        else:
            F.add_into(self.grad, g)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    """Base class: ``forward`` computes and keeps what ``backward`` needs; ``backward(dy)`` returns dx and
    accumulates the parameters' gradients."""

    def __init__(self):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_children", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "input_grad", True)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._children[name] = value
        object.__setattr__(self, name, value)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def named_parameters(self, prefix=""):
        for name, p in self._params.items():
            if p is not None:
                yield prefix + name, p
        for cname, child in self._children.items():
            yield from child.named_parameters(f"{prefix}{cname}.")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def modules(self):
        yield self
        for child in self._children.values():
            yield from child.modules()

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self):
        """Name -> numpy copy of each parameter (PyTorch's names: "3.weight")."""
        out = OrderedDict()
        for name, p in self.named_parameters():
            out[name] = to_host(p.data, copy=True)
        return out

    def load_state_dict(self, state):
        """Copy arrays into the existing parameters, cast to their dtype. Every key and shape is checked
        before anything is copied, so a mismatch leaves the module untouched."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(f"state_dict does not match the module: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {}
        for name, p in params.items():
            a = state[name]
            a = to_host(a)
            if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
                raise TypeError(f"state_dict[{name!r}] must be a real numeric array, got dtype {a.dtype}")
            if tuple(a.shape) != p.shape:
                raise ValueError(f"state_dict[{name!r}] has shape {tuple(a.shape)}, the module needs {p.shape}")
            arrays[name] = a.astype(p.dtype)
        for name, p in params.items():
            if is_device_array(p.data):
                p.data.copy_to_device(np.ascontiguousarray(arrays[name]))
            else:
                p.data[...] = arrays[name]

    def to(self, target):
        """Move parameters to ``"cpu"`` or ``"cuda"``, or cast them to a float dtype (``np.float64``)."""
        if isinstance(target, str):
            if target == "cpu":
                convert = to_host
            elif target == "cuda":
                from .. import cuda

                convert = cuda.to_device
            else:
                raise ValueError(f"target must be 'cpu', 'cuda' or a float dtype, got {target!r}")
        else:
            try:
                dtype = np.dtype(target)
            except TypeError:
                raise TypeError(f"target must be 'cpu', 'cuda' or a float dtype, got {target!r}") from None
            if dtype not in (np.float32, np.float64):
                raise TypeError(f"target dtype must be float32 or float64, got {dtype}")
            if any(is_device_array(p.data) for p in self.parameters()):
                raise TypeError("cast parameters on the CPU: call .to('cpu') first, then .to(dtype)")
            convert = lambda a: a.astype(dtype)  # noqa: E731
        for p in self.parameters():
            p.data = convert(p.data)
            p.grad = None if p.grad is None else convert(p.grad)
        return self

    def set_input_grad(self, flag):
        """Whether ``backward`` must return dx. A network's first layer rarely needs it (its input is data):
        with False, layers that can skip that work (Conv2D, Linear) return None instead."""
        object.__setattr__(self, "input_grad", bool(flag))
        return self

    def extra_repr(self):
        return ""

    def __repr__(self):
        if not self._children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(c).replace("\n", "\n  ") for name, c in self._children.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"
