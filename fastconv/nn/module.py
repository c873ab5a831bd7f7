"""Parameter and Module: the bookkeeping every layer shares."""
from collections import OrderedDict
from contextlib import contextmanager

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
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "input_grad", True)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._children[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """Keep ``array`` as state that is not a parameter (BatchNorm's running statistics): in
        ``state_dict()`` after this module's parameters, in checkpoints, moved by ``to()``, never seen by an
        optimizer. ``self.<name>`` reads and replaces it."""
        self._buffers[name] = array
        object.__setattr__(self, name, array)

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

    def named_buffers(self, prefix=""):
        for name, b in self._buffers.items():
            yield prefix + name, b
        for cname, child in self._children.items():
            yield from child.named_buffers(f"{prefix}{cname}.")

    def _state(self, prefix=""):
        """(key, owner, attribute, is_buffer) of every parameter and buffer in PyTorch's state-dict order: a
        module's own parameters, then its own buffers, then each child's, in registration order."""
        for name, p in self._params.items():
            if p is not None:
                yield prefix + name, self, name, False
        for name in self._buffers:
            yield prefix + name, self, name, True
        for cname, child in self._children.items():
            yield from child._state(f"{prefix}{cname}.")

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

    @contextmanager
    def mode(self, training):
        """``with model.mode(False):`` runs a block in eval (or training) mode, then gives every module back
        the mode it had."""
        modes = [(m, m.training) for m in self.modules()]
        self.train(training)
        try:
            yield self
        finally:
            for m, was in modes:
                object.__setattr__(m, "training", was)

    def _arrays(self):
        """(key, array) of every parameter and buffer, in ``_state`` order: the arrays themselves, no copies."""
        for key, owner, name, is_buffer in self._state():
            yield key, owner._buffers[name] if is_buffer else owner._params[name].data

    def state_dict(self):
        """Name -> numpy copy of each parameter and buffer, in PyTorch's order and with its names
        ("3.weight", "1.running_mean")."""
        return OrderedDict((key, to_host(a, copy=True)) for key, a in self._arrays())

    def load_state_dict(self, state):
        """Copy arrays into the existing parameters and buffers, cast to their dtype. Every key and shape is
        checked before anything is copied, so a mismatch leaves the module untouched."""
        entries = dict(self._arrays())  # (each is filled in place)
        missing = sorted(set(entries) - set(state))
        unexpected = sorted(set(state) - set(entries))
        if missing or unexpected:
            raise ValueError(f"state_dict does not match the module: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {}
        for key, target in entries.items():
            a = to_host(state[key])
            if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
                raise TypeError(f"state_dict[{key!r}] must be a real numeric array, got dtype {a.dtype}")
            if tuple(a.shape) != tuple(target.shape):
                raise ValueError(f"state_dict[{key!r}] has shape {tuple(a.shape)}, the module needs {tuple(target.shape)}")
            arrays[key] = a.astype(target.dtype)
        for key, target in entries.items():
            if is_device_array(target):
                target.copy_to_device(np.ascontiguousarray(arrays[key]))
            else:
                target[...] = arrays[key]

    def to(self, target):
        """Move parameters and floating buffers to ``"cpu"`` or ``"cuda"``, or cast them to a float dtype
        (``np.float64``); integer buffers (``num_batches_tracked``) stay on the host with their dtype."""
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
            convert = lambda a: a.astype(dtype) if np.dtype(a.dtype).kind == "f" else a  # noqa: E731
        for p in self.parameters():
            p.data = convert(p.data)
            p.grad = None if p.grad is None else convert(p.grad)
        for m in self.modules():
            for name, b in list(m._buffers.items()):
                if np.dtype(b.dtype).kind == "f":  # (integer buffers, counters, stay on the host)
                    setattr(m, name, convert(b))
        return self

    def set_input_grad(self, flag):
        """Whether ``backward`` must return dx (True by default for a layer; a Sequential network asks for it
        only when told so). With False, layers that can skip that work (Conv2D, Linear) return None instead."""
        object.__setattr__(self, "input_grad", bool(flag))
        return self

    def extra_repr(self):
        return ""

    def __repr__(self):
        if not self._children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(c).replace("\n", "\n  ") for name, c in self._children.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"
