"""Graph: a network that is a DAG of modules over named values (what ``fastconv.onnx.load`` builds), and the
small ops an ONNX graph has besides layers: Add, Reshape, Flatten(axis), Softmax, Transpose."""
import numpy as np

from .. import functional as F
from .._checks import is_device_array, to_host
from ..nn.module import Module, Parameter


class Graph(Module):
    """Applies ``steps`` in order, each ``(child_name, module, input_names, output_name)``, to a table of named
    values that starts with ``{input_name: x}``; returns the value ``output_name``. Backward runs the steps
    in reverse, summing the gradients of values that feed several steps. As a Sequential, it returns no
    gradient with respect to its input unless asked with ``set_input_grad(True)``."""

    def __init__(self, steps, input_name, output_name):
        super().__init__()
        self._steps = []
        for name, m, inputs, output in steps:
            if not isinstance(m, Module):
                raise TypeError(f"Graph step {name!r} must be a Module, got {type(m).__name__}")
            if not isinstance(name, str) or not name or name.startswith("_") or hasattr(self, name):
                raise ValueError(f"Graph step name {name!r} is empty, private or taken by the Graph itself")
            setattr(self, name, m)
            m.set_input_grad(True)
            self._steps.append((name, m, tuple(inputs), output))
        self.input_name, self.output_name = input_name, output_name
        self.set_input_grad(False)

    @property
    def steps(self):
        """The ``(child_name, module, input_names, output_name)`` of each step, in order."""
        return list(self._steps)

    def set_input_grad(self, flag):
        """Passed on to the steps that read the graph's input."""
        super().set_input_grad(flag)
        for _, m, inputs, _ in getattr(self, "_steps", ()):
            if self.input_name in inputs and len(inputs) == 1:
                m.set_input_grad(flag)
        return self

    def forward(self, x):
        values = {self.input_name: x}
        for _, m, inputs, output in self._steps:
            values[output] = m.forward(*[values[i] for i in inputs])
        return values[self.output_name]

    def backward(self, dy):
        grads = {self.output_name: dy}
        for _, m, inputs, output in reversed(self._steps):
            g = grads.pop(output, None)
            if g is None:  # (a value that does not reach the output)
                continue
            back = m.backward(g)
            for name, d in zip(inputs, back if isinstance(back, tuple) else (back,)):
                if d is not None:
                    grads[name] = d if name not in grads else F.add(grads[name], d)
        return grads.get(self.input_name) if self.input_grad else None

    def extra_repr(self):
        return f"input={self.input_name!r}, output={self.output_name!r}"

    def __repr__(self):
        lines = [f"  ({name}): {m!r} <- {', '.join(inputs)}".replace("\n", "\n  ") for name, m, inputs, _ in self._steps]
        return f"Graph(\n" + "\n".join(lines) + "\n)"


def _unbroadcast(g, shape):
    """Sum g over the axes that numpy broadcasting added or stretched to reach it from ``shape``."""
    g = np.asarray(g)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _on_host(f, *arrays):
    """Apply a numpy function; device inputs are copied to the host and the result back to the device."""
    if any(is_device_array(a) for a in arrays):
        from .. import cuda

        return cuda.to_device(np.ascontiguousarray(f(*[to_host(a) for a in arrays])))
    return f(*arrays)


class Add(Module):
    """ONNX Add of two values (numpy broadcasting); backward gives each input the gradient summed back to its
    shape."""

    def forward(self, a, b):
        self._shapes = (tuple(a.shape), tuple(b.shape))
        if self._shapes[0] == self._shapes[1]:
            return F.add(a, b)
        return _on_host(np.add, a, b)

    def backward(self, dy):
        sa, sb = self._shapes
        if sa == sb:
            return dy, dy
        return tuple(_on_host(lambda g, s=s: _unbroadcast(g, s).astype(g.dtype), dy) for s in (sa, sb))


class AddConstant(Module):
    """ONNX Add of a value and a stored array (a bias), kept as the trainable parameter ``value``."""

    def __init__(self, value):
        super().__init__()
        self.value = Parameter(np.asarray(value))
        object.__setattr__(self, "_add", Add())  # (a helper, not a child)

    def forward(self, x):
        return self._add.forward(x, self.value.data)

    def backward(self, dy):
        dx, dv = self._add.backward(dy)
        self.value.accumulate(_on_host(lambda g: np.ascontiguousarray(g.reshape(self.value.shape)), dv))
        return dx

    def extra_repr(self):
        return f"shape={self.value.shape}"


class Reshape(Module):
    """ONNX Reshape to a fixed ``shape``: 0 copies the input's size on that axis, -1 is inferred."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(d) for d in shape)
        if sum(d == -1 for d in self.shape) > 1 or any(d < -1 for d in self.shape):
            raise ValueError(f"Reshape shape {self.shape} may hold one -1 and no other negative size")

    def target(self, in_shape):
        out = [in_shape[i] if d == 0 else d for i, d in enumerate(self.shape)]
        if -1 in out:
            known = int(np.prod([d for d in out if d != -1]))
            total = int(np.prod(in_shape))
            if known == 0 or total % known:
                raise ValueError(f"Reshape of shape {tuple(in_shape)} to {self.shape}: sizes do not divide")
            out[out.index(-1)] = total // known
        if int(np.prod(out)) != int(np.prod(in_shape)):
            raise ValueError(f"Reshape of shape {tuple(in_shape)} ({int(np.prod(in_shape))} values) to {self.shape}")
        return tuple(out)

    def forward(self, x):
        self._in_shape = tuple(x.shape)
        return x.reshape(self.target(self._in_shape))

    def backward(self, dy):
        return dy.reshape(self._in_shape)

    def extra_repr(self):
        return f"shape={self.shape}"


class FlattenAxis(Module):
    """ONNX Flatten: (d0, ..., dn) -> (d0 * ... * d(axis-1), d(axis) * ... * dn)."""

    def __init__(self, axis):
        super().__init__()
        self.axis = int(axis)

    def forward(self, x):
        self._in_shape = tuple(x.shape)
        axis = self.axis + len(x.shape) if self.axis < 0 else self.axis
        if not 0 <= axis <= len(x.shape):
            raise ValueError(f"Flatten axis {self.axis} is out of range for an input of shape {tuple(x.shape)}")
        return x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))

    def backward(self, dy):
        return dy.reshape(self._in_shape)

    def extra_repr(self):
        return f"axis={self.axis}"


class Softmax(Module):
    """Softmax along ``axis``; with ``legacy`` (ONNX before opset 13) over all axes from ``axis`` on, as one."""

    def __init__(self, axis=-1, legacy=False):
        super().__init__()
        self.axis, self.legacy = int(axis), bool(legacy)

    def _axes(self, ndim):
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 0 <= axis < ndim:
            raise ValueError(f"Softmax axis {self.axis} is out of range for an input of {ndim} dimensions")
        return tuple(range(axis, ndim)) if self.legacy else (axis,)

    def forward(self, x):
        def f(a):
            axes = self._axes(a.ndim)
            e = np.exp(a - a.max(axis=axes, keepdims=True))
            return e / e.sum(axis=axes, keepdims=True)

        self._y = _on_host(f, x)
        return self._y

    def backward(self, dy):
        return _on_host(lambda g, y: y * (g - (g * y).sum(axis=self._axes(y.ndim), keepdims=True)), dy, self._y)

    def extra_repr(self):
        return f"axis={self.axis}" + (", legacy=True" if self.legacy else "")


class Transpose2D(Module):
    """(M, K) -> (K, M): Gemm's transA."""

    def forward(self, x):
        if len(x.shape) != 2:
            raise ValueError(f"Gemm with transA=1 needs a 2-D input, got shape {tuple(x.shape)}")
        return _on_host(lambda a: np.ascontiguousarray(a.T), x)

    def backward(self, dy):
        return _on_host(lambda g: np.ascontiguousarray(g.T), dy)
