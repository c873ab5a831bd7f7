"""One converter per ONNX operator: attributes checked and mapped to a fastconv module.

Each converter takes a :class:`Node` (the node, its attributes and the graph's constants) and returns
``(module, dynamic_inputs)``, or ``(array, None)`` when the node computes a constant.
"""
import numpy as np

from .. import nn
from . import graph

MAX_SPATIAL = 1 << 16  # kernel sizes, strides, dilations and pads beyond this are refused


class Node:
    """A node being converted: ``op``, ``label`` (for messages), ``attrs`` (name -> value), ``inputs`` (names,
    "" for an omitted optional input), ``opset``, and ``consts`` (name -> array of the graph's constants)."""

    def __init__(self, proto, index, attrs, consts, opset, path):
        self.op, self.inputs, self.attrs = proto.op_type, list(proto.input), attrs
        self.label = f"ONNX file {path}: node {proto.name or '#' + str(index)!r} ({proto.op_type})"
        self.consts, self.opset = consts, opset

    def refuse(self, what, attribute=None):
        where = f", attribute {attribute}" if attribute else ""
        return ValueError(f"{self.label}{where}: {what}")

    def const(self, i, what):
        """Input i, which must be a constant (an initializer or a Constant node)."""
        name = self.inputs[i] if i < len(self.inputs) else ""
        if name not in self.consts:
            raise self.refuse(f"input {i} ({what}) must be a constant (an initializer or a Constant node); "
                              f"{name!r} is computed by the graph, which fastconv does not support here")
        return self.consts[name]

    def optional_const(self, i, what):
        return self.const(i, what) if i < len(self.inputs) and self.inputs[i] else None

    def dynamic(self, i):
        name = self.inputs[i]
        if name in self.consts:
            raise self.refuse(f"input {i} ({name!r}) is a constant; fastconv needs a computed value there")
        return name

    def int(self, name, default, lo=0, hi=MAX_SPATIAL):
        v = self.attrs.get(name, default)
        if isinstance(v, (bool, float)) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise self.refuse(f"needs an int in [{lo}, {hi}], got {v!r:.60}", name)
        return int(v)

    def ints(self, name, default, n, lo=0, hi=MAX_SPATIAL):
        v = self.attrs.get(name, default)
        if v is None or not isinstance(v, (list, tuple)) or len(v) != n or not all(
                isinstance(e, (int, np.integer)) and lo <= e <= hi for e in v):
            raise self.refuse(f"needs {n} ints in [{lo}, {hi}] (2-D ops only), got {v!r:.60}", name)
        return tuple(int(e) for e in v)

    def float(self, name, default):
        v = self.attrs.get(name, default)
        if not isinstance(v, (int, float)) or not np.isfinite(v):
            raise self.refuse(f"needs a finite float, got {v!r:.60}", name)
        return float(v)

    def string(self, name, default, allowed):
        v = self.attrs.get(name, default)
        v = v.decode() if isinstance(v, bytes) else v
        if v not in allowed:
            raise self.refuse(f"value {v!r:.60} is not supported (supported: {', '.join(allowed)})", name)
        return v


def _padding(node, kernel, strides, dilations):
    """ONNX pads [top, left, bottom, right] or auto_pad, as ((top, bottom), (left, right))."""
    auto = node.string("auto_pad", "NOTSET", ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"))
    if auto == "NOTSET":
        t, left, b, r = node.ints("pads", [0, 0, 0, 0], 4)
        return ((t, b), (left, r))
    if "pads" in node.attrs:
        raise node.refuse(f"auto_pad={auto} and pads are both given", "pads")
    if auto == "VALID":
        return ((0, 0), (0, 0))
    if strides != (1, 1):
        raise node.refuse(f"auto_pad={auto} with strides {strides}: its padding depends on the input size; "
                          "only stride 1 maps to fixed padding", "auto_pad")
    sides = []
    for k, d in zip(kernel, dilations):
        total = d * (k - 1)
        first = total // 2 if auto == "SAME_UPPER" else total - total // 2
        sides.append((first, total - first))
    return tuple(sides)


def _set(param, array):
    param.data[...] = array


def conv(node):
    w = node.const(1, "W")
    if w.ndim != 4:
        raise node.refuse(f"W has shape {w.shape}; fastconv runs 2-D convolutions (a 4-D W)")
    b = node.optional_const(2, "B")
    group = node.int("group", 1, 1, 1 << 30)
    kernel = node.ints("kernel_shape", list(w.shape[2:]), 2, 1)
    if kernel != w.shape[2:]:
        raise node.refuse(f"kernel_shape {kernel} differs from W's shape {w.shape}", "kernel_shape")
    strides, dilations = node.ints("strides", [1, 1], 2, 1), node.ints("dilations", [1, 1], 2, 1)
    pads = _padding(node, kernel, strides, dilations)
    if b is not None and b.shape != (w.shape[0],):
        raise node.refuse(f"B has shape {b.shape}, needs ({w.shape[0]},)")
    m = nn.Conv2D(w.shape[1] * group, w.shape[0], kernel, strides, pads, dilations, group, bias=b is not None,
                  dtype=w.dtype)
    _set(m.weight, w)
    if b is not None:
        _set(m.bias, b)
    return m, [node.dynamic(0)]


def pool(node):
    kernel = node.ints("kernel_shape", None, 2, 1)
    strides = node.ints("strides", [1, 1], 2, 1)
    ceil_mode = bool(node.int("ceil_mode", 0, 0, 1))
    if node.op == "MaxPool":
        dilations = node.ints("dilations", [1, 1], 2, 1)
        if node.int("storage_order", 0, 0, 1):
            raise node.refuse("storage_order=1 (column-major indices) is not supported", "storage_order")
        return nn.MaxPool2D(kernel, strides, _padding(node, kernel, strides, dilations), dilations,
                            ceil_mode), [node.dynamic(0)]
    if node.ints("dilations", [1, 1], 2, 1) != (1, 1):
        raise node.refuse("dilated average pooling is not supported", "dilations")
    include = bool(node.int("count_include_pad", 0, 0, 1))
    return nn.AvgPool2D(kernel, strides, _padding(node, kernel, strides, (1, 1)), ceil_mode, include), [node.dynamic(0)]


def gemm(node):
    b = node.const(1, "B")
    c = node.optional_const(2, "C")
    alpha, beta = node.float("alpha", 1.0), node.float("beta", 1.0)
    trans_a, trans_b = node.int("transA", 0, 0, 1), node.int("transB", 0, 0, 1)
    if b.ndim != 2:
        raise node.refuse(f"B has shape {b.shape}, needs 2 dimensions")
    w = (b if trans_b else b.T) * alpha  # (out, in), alpha folded into the weight
    if c is not None:
        if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or (c.ndim and c.shape[-1] not in (1, w.shape[0])):
            raise node.refuse(f"C has shape {c.shape}: only a bias shared by every row ((), ({w.shape[0]},) or "
                              f"(1, {w.shape[0]})) is supported")
        c = np.broadcast_to(c.reshape(-1) if c.ndim else c, (w.shape[0],)) * beta
    m = nn.Linear(w.shape[1], w.shape[0], bias=c is not None, dtype=b.dtype)
    _set(m.weight, w)
    if c is not None:
        _set(m.bias, c)
    return (nn.Sequential(graph.Transpose2D(), m) if trans_a else m), [node.dynamic(0)]


def matmul(node):
    b = node.const(1, "B")
    if b.ndim != 2:
        raise node.refuse(f"B has shape {b.shape}, needs 2 dimensions")
    m = nn.Linear(b.shape[0], b.shape[1], bias=False, dtype=b.dtype)
    _set(m.weight, b.T)
    return m, [node.dynamic(0)]


def add(node):
    a, b = node.inputs[0], node.inputs[1]
    if a in node.consts and b in node.consts:
        return node.consts[a] + node.consts[b], None
    if a in node.consts or b in node.consts:
        const, dyn = (a, b) if a in node.consts else (b, a)
        return graph.AddConstant(node.consts[const]), [dyn]
    return graph.Add(), [a, b]


def batch_norm(node):
    if node.int("training_mode", 0, 0, 1):
        raise node.refuse("training_mode=1 is not supported (import the inference form)", "training_mode")
    if node.int("spatial", 1, 0, 1) != 1:
        raise node.refuse("spatial=0 (per-position statistics) is not supported", "spatial")
    scale, bias, mean, var = (node.const(i, n) for i, n in enumerate(("scale", "B", "mean", "var"), 1))
    c = scale.shape[0] if scale.ndim == 1 else 0
    if c == 0 or any(a.shape != (c,) for a in (bias, mean, var)):
        raise node.refuse(f"scale, B, mean and var must be 1-D of one size, got {scale.shape}, {bias.shape}, "
                          f"{mean.shape}, {var.shape}")
    momentum = node.float("momentum", 0.9)
    if not 0.0 <= momentum <= 1.0:
        raise node.refuse(f"needs a momentum in [0, 1], got {momentum}", "momentum")
    m = nn.BatchNorm2D(c, node.float("epsilon", 1e-5), 1.0 - momentum, dtype=scale.dtype)
    _set(m.weight, scale)
    _set(m.bias, bias)
    m.running_mean[...], m.running_var[...] = mean, var
    return m.eval(), [node.dynamic(0)]


def flatten(node):
    axis = node.int("axis", 1, -8, 8)
    return (nn.Flatten() if axis == 1 else graph.FlattenAxis(axis)), [node.dynamic(0)]


def reshape(node):
    shape = node.const(1, "shape")
    if shape.ndim != 1 or shape.dtype.kind != "i":
        raise node.refuse(f"shape must be a 1-D integer constant, got {shape.dtype} {shape.shape}")
    if node.int("allowzero", 0, 0, 1) and 0 in shape:
        raise node.refuse("allowzero=1 with a 0 in the shape is not supported", "allowzero")
    try:
        return graph.Reshape(shape), [node.dynamic(0)]
    except ValueError as e:
        raise node.refuse(str(e)) from None


def dropout(node):
    ratio = node.optional_const(1, "ratio")
    ratio = node.float("ratio", 0.5) if ratio is None else float(ratio)
    training = node.optional_const(2, "training_mode")
    if training is not None and bool(training):
        raise node.refuse("training_mode=True is not supported (import the inference form)")
    if not 0.0 <= ratio < 1.0:
        raise node.refuse(f"ratio must be in [0, 1), got {ratio}", "ratio")
    return nn.Dropout(ratio), [node.dynamic(0)]


def softmax(node):
    legacy = node.opset < 13
    return graph.Softmax(node.int("axis", 1 if legacy else -1, -8, 8), legacy), [node.dynamic(0)]


def _plain(cls):
    return lambda node: (cls(), [node.dynamic(0)])


# op -> (converter, the attributes it reads, number of outputs it supports)
CONVERTERS = {
    "Conv": (conv, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}),
    "MaxPool": (pool, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"}),
    "AveragePool": (pool, {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads",
                           "strides"}),
    "GlobalAveragePool": (_plain(nn.GlobalAvgPool2D), set()),
    "Relu": (_plain(nn.ReLU), set()),
    "Tanh": (_plain(nn.Tanh), set()),
    "Sigmoid": (_plain(nn.Sigmoid), set()),
    "Gemm": (gemm, {"alpha", "beta", "transA", "transB"}),
    "MatMul": (matmul, set()),
    "Add": (add, set()),
    "BatchNormalization": (batch_norm, {"epsilon", "momentum", "training_mode", "spatial"}),
    "Flatten": (flatten, {"axis"}),
    "Reshape": (reshape, {"allowzero"}),
    "Dropout": (dropout, {"ratio", "seed"}),
    "Softmax": (softmax, {"axis"}),
}
