"""``export``: a fastconv module to a standard ONNX file (opset 13 and up, a dynamic batch dimension)."""
from pathlib import Path

import numpy as np

from .. import nn
from .._checks import conv_padding, padding_sides, to_host
from . import graph
from .load import _onnx

MIN_OPSET = 13


class _Writer:
    """The nodes and initializers of the graph being written; ``value()`` names each new value."""

    def __init__(self, onnx, dtype):
        self.onnx, self.nodes, self.inits, self._n = onnx, [], [], 0
        self.dtype = dtype

    def value(self):
        self._n += 1
        return f"t{self._n}"

    def init(self, name, array, dtype=None):
        a = np.asarray(to_host(array), dtype or self.dtype)
        self.inits.append(self.onnx.numpy_helper.from_array(a, name))
        return name

    def node(self, op, inputs, **attrs):
        out = self.value()
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=f"{op}_{len(self.nodes)}", **attrs))
        return out


def _pads(sides):
    t, b, left, r = sides
    return [t, left, b, r]


def _conv(w, m, x, prefix):
    inputs = [x, w.init(prefix + "weight", m.weight.data)]
    if m.bias is not None:
        inputs.append(w.init(prefix + "bias", m.bias.data))
    sides = conv_padding(m.padding, m.kernel_size, m.dilation, m.stride)
    return w.node("Conv", inputs, kernel_shape=list(m.kernel_size), strides=list(m.stride), pads=_pads(sides),
                  dilations=list(m.dilation), group=m.groups)


def _linear(w, m, x, prefix):
    inputs = [x, w.init(prefix + "weight", m.weight.data)]
    if m.bias is not None:
        inputs.append(w.init(prefix + "bias", m.bias.data))
    return w.node("Gemm", inputs, transB=1)


def _batch_norm(w, m, x, prefix):
    names = [w.init(prefix + k, a) for k, a in (("weight", m.weight.data), ("bias", m.bias.data),
                                                ("running_mean", m.running_mean), ("running_var", m.running_var))]
    return w.node("BatchNormalization", [x, *names], epsilon=m.eps, momentum=1.0 - m.momentum)


def _max_pool(w, m, x, prefix):
    return w.node("MaxPool", [x], kernel_shape=list(m.kernel_size), strides=list(m.stride),
                  pads=_pads(padding_sides(m.padding)), dilations=list(m.dilation), ceil_mode=int(m.ceil_mode))


def _avg_pool(w, m, x, prefix):
    return w.node("AveragePool", [x], kernel_shape=list(m.kernel_size), strides=list(m.stride),
                  pads=_pads(padding_sides(m.padding)), ceil_mode=int(m.ceil_mode),
                  count_include_pad=int(m.count_include_pad))


def _sequential(w, m, x, prefix):
    for i, child in enumerate(m):
        x = _emit(w, child, x, f"{prefix}{i}.")
    return x


def _residual(w, m, x, prefix):
    y = _emit(w, m.body, x, prefix + "body.")
    s = x if m.shortcut is None else _emit(w, m.shortcut, x, prefix + "shortcut.")
    return w.node("Add", [y, s])


def _graph(w, m, x, prefix):
    values = {m.input_name: x}
    for name, child, inputs, output in m.steps:
        args = [values[i] for i in inputs]
        values[output] = (w.node("Add", args) if type(child) is graph.Add
                          else _emit(w, child, args[0], f"{prefix}{name}."))
    return values[m.output_name]


def _softmax(w, m, x, prefix):
    if m.legacy:
        raise ValueError("a Softmax imported from an opset before 13 (over all axes from its axis on) cannot be "
                         "exported; export the original model with opset 13 or later")
    return w.node("Softmax", [x], axis=m.axis)


def _reshape(w, m, x, prefix):
    return w.node("Reshape", [x, w.init(prefix + "shape", np.array(m.shape), np.int64)])


_EMIT = {
    nn.Sequential: _sequential, nn.Residual: _residual, graph.Graph: _graph,
    nn.Conv2D: _conv, nn.Linear: _linear, nn.BatchNorm2D: _batch_norm,
    nn.MaxPool2D: _max_pool, nn.AvgPool2D: _avg_pool,
    nn.GlobalAvgPool2D: lambda w, m, x, p: w.node("GlobalAveragePool", [x]),
    nn.ReLU: lambda w, m, x, p: w.node("Relu", [x]),
    nn.Tanh: lambda w, m, x, p: w.node("Tanh", [x]),
    nn.Sigmoid: lambda w, m, x, p: w.node("Sigmoid", [x]),
    nn.Flatten: lambda w, m, x, p: w.node("Flatten", [x], axis=1),
    nn.Dropout: lambda w, m, x, p: x,  # (identity at inference)
    graph.FlattenAxis: lambda w, m, x, p: w.node("Flatten", [x], axis=m.axis),
    graph.AddConstant: lambda w, m, x, p: w.node("Add", [x, w.init(p + "value", m.value.data)]),
    graph.Transpose2D: lambda w, m, x, p: w.node("Transpose", [x], perm=[1, 0]),
    graph.Softmax: _softmax, graph.Reshape: _reshape,
}


def _emit(w, m, x, prefix):
    fn = _EMIT.get(type(m))
    if fn is None:
        raise TypeError(f"module {type(m).__name__} has no ONNX form (exported: "
                        f"{', '.join(sorted(c.__name__ for c in _EMIT))})")
    return fn(w, m, x, prefix)


def _output_shape(model, input_shape, dtype):
    """The output's shape for one image, from a forward pass in eval mode (the modes are restored after)."""
    with model.mode(False):
        return tuple(model(np.zeros((1, *input_shape[1:]), dtype)).shape)


def export(model, path, input_shape, opset=17):
    """Write ``model`` as an ONNX file: input ``"input"`` of ``input_shape`` (N, C, H, W) with the batch axis
    dynamic, output ``"output"``; weights under their state-dict names; BatchNorm2D in its inference form and
    Dropout as nothing, as onnxruntime runs a model. The model is checked with ``onnx.checker`` before the
    file is written (atomically)."""
    onnx = _onnx()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset must be an int from {MIN_OPSET} to {onnx.defs.onnx_opset_version()}, got {opset!r}")
    shape = tuple(input_shape)
    if len(shape) != 4 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in shape):
        raise ValueError(f"input_shape must be (N, C, H, W) of positive ints, got {input_shape!r}")
    params = model.parameters()
    dtype = np.dtype(params[0].dtype if params else np.float32)
    if any(p.dtype != dtype for p in params) or dtype not in (np.float32, np.float64):
        raise TypeError(f"export needs parameters of one float dtype, got {sorted({str(p.dtype) for p in params})}")
    model = model if not params or isinstance(params[0].data, np.ndarray) else _host_copy(model)
    out_shape = _output_shape(model, shape, dtype)
    w = _Writer(onnx, dtype)
    out = _emit(w, model, "input", "")
    w.nodes.append(onnx.helper.make_node("Identity", [out], ["output"], name="output"))
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    g = onnx.helper.make_graph(
        w.nodes, "fastconv", [onnx.helper.make_tensor_value_info("input", elem, ["N", *shape[1:]])],
        [onnx.helper.make_tensor_value_info("output", elem, ["N", *out_shape[1:]])], w.inits)
    ops = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(g, opset_imports=ops, producer_name="fastconv",
                                   ir_version=onnx.helper.find_min_ir_version_for(ops))
    onnx.checker.check_model(proto, full_check=True)
    from ..checkpoint import atomic_write_bytes

    atomic_write_bytes(Path(path), proto.SerializeToString())
    return proto


def _host_copy(model):
    """A copy of a model whose parameters live on the GPU, on the host (from its architecture and state)."""
    if isinstance(model, graph.Graph):
        raise TypeError("export an imported Graph from the host: call .to('cpu') first")
    host = nn.build(nn.spec(model))
    host.load_state_dict(model.state_dict())
    return host
