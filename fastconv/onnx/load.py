"""``load``: an ONNX file to a fastconv Graph, checked as an untrusted file.

The file's size is checked before it is read (protobuf holds at most 2 GiB), the parse is guarded, every
tensor is checked against its declared shape before it is converted, tensors kept in external files are
refused (a model cannot make fastconv open other paths), and every operator and attribute value the library
cannot run is refused by name.
"""
import re
from pathlib import Path

import numpy as np

from .. import _untrusted
from . import ops, tensors
from .graph import Graph

MAX_FILE_BYTES = 1 << 31
MAX_NODES = 1 << 20


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ModuleNotFoundError("fastconv.onnx needs the onnx package: pip install 'fastconv[onnx]'") from None
    return onnx


def _parse(path):
    onnx = _onnx()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"ONNX file {path} does not exist") from None
    if size > MAX_FILE_BYTES:
        raise ValueError(f"ONNX file {path} has {size} bytes, over protobuf's limit of {MAX_FILE_BYTES}")
    proto = onnx.ModelProto()
    with _untrusted.reading(path, "ONNX file"):
        try:
            proto.ParseFromString(path.read_bytes())
        except (MemoryError, RecursionError):
            raise
        except Exception as e:  # protobuf's DecodeError, and whatever else a damaged message raises
            raise ValueError(f"ONNX file {path} is damaged or not an ONNX model: {e}") from None
    if not proto.HasField("graph"):
        raise ValueError(f"ONNX file {path} holds no graph: not an ONNX model")
    return proto


def _opset(proto, path):
    versions = {o.domain: o.version for o in proto.opset_import}
    version = versions.get("", versions.get("ai.onnx"))
    if version is None:
        raise ValueError(f"ONNX file {path} imports no version of the standard operator set")
    return version


def _attrs(onnx, node, label, allowed):
    out = {}
    for a in node.attribute:
        if a.name not in allowed:
            raise ValueError(f"{label}: attribute {a.name} is not supported (supported: "
                             f"{', '.join(sorted(allowed)) or 'none'})")
        out[a.name] = onnx.helper.get_attribute_value(a)
    return out


def _child_name(node, taken):
    """The child's name: the prefix of its weight's name where that reads "<prefix>.weight" (so state-dict keys
    are the file's initializer names), else the node's name, made safe and unique."""
    base = ""
    if len(node.input) > 1 and node.input[1].endswith(".weight"):
        base = node.input[1][: -len(".weight")]
    base = re.sub(r"[^A-Za-z0-9_.]", "_", base or node.name or node.op_type).strip("._") or node.op_type
    name, i = base, 1
    while name in taken or hasattr(Graph, name):
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def _constant(onnx, node, label, path):
    attrs = {a.name: a for a in node.attribute}
    if set(attrs) == {"value"}:
        return tensors.to_array(attrs["value"].t, path, f"{label}'s value")
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if set(attrs) == {key}:
            return np.asarray(onnx.helper.get_attribute_value(attrs[key]), dtype)
    raise ValueError(f"{label}: only the attributes value, value_float(s) and value_int(s) are supported, got "
                     f"{sorted(attrs)}")


def _value_dtype(onnx, value, path):
    t = value.type.tensor_type.elem_type
    if t not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        raise ValueError(f"ONNX file {path}: graph input {value.name!r} has element type {t}; fastconv runs "
                         "float32 (1) and float64 (11) graphs")
    return np.float32 if t == onnx.TensorProto.FLOAT else np.float64


def _build(proto, path):
    onnx, g = _onnx(), proto.graph
    opset = _opset(proto, path)
    if len(g.node) > MAX_NODES:
        raise ValueError(f"ONNX file {path} has {len(g.node)} nodes, over the limit of {MAX_NODES}")
    consts = {t.name: tensors.to_array(t, path, f"initializer {t.name!r}") for t in g.initializer}
    inputs = [v for v in g.input if v.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise ValueError(f"ONNX file {path}: the graph has inputs {[v.name for v in inputs]} and outputs "
                         f"{[v.name for v in g.output]}; fastconv runs graphs of one input and one output")
    dtype = _value_dtype(onnx, inputs[0], path)
    floats = {a.dtype for a in consts.values() if a.dtype.kind == "f"}
    if floats - {np.dtype(dtype)}:
        raise ValueError(f"ONNX file {path}: the graph's input is {np.dtype(dtype)} but it stores {sorted(map(str, floats))} "
                         "weights; fastconv runs graphs of one float type")
    defined, alias, steps, taken = {inputs[0].name}, {}, [], set()
    for i, node in enumerate(g.node):
        label = f"ONNX file {path}: node {node.name or '#' + str(i)!r} ({node.op_type})"
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"{label}: operator domain {node.domain!r} is not supported")
        node.input[:] = [alias.get(n, n) for n in node.input]
        if node.op_type == "Constant":
            consts[node.output[0]] = _constant(onnx, node, label, path)
            continue
        if node.op_type == "Identity":
            if node.input[0] in consts:
                consts[node.output[0]] = consts[node.input[0]]
            else:
                alias[node.output[0]] = node.input[0]
            continue
        if node.op_type not in ops.CONVERTERS:
            raise ValueError(f"{label}: operator {node.op_type} is not supported; fastconv imports "
                             f"{', '.join(sorted([*ops.CONVERTERS, 'Constant', 'Identity']))}")
        convert, allowed = ops.CONVERTERS[node.op_type]
        if any(o for o in node.output[1:]):
            raise ValueError(f"{label}: only its first output is supported, the graph uses {list(node.output)}")
        n = ops.Node(node, i, _attrs(onnx, node, label, allowed), consts, opset, path)
        try:
            module, dynamic = convert(n)
        except (ValueError, TypeError) as e:
            raise (e if str(path) in str(e) else ValueError(f"{label}: {e}")) from None
        if dynamic is None:
            consts[node.output[0]] = module
            continue
        for name in dynamic:
            if name not in defined:
                raise ValueError(f"{label}: input {name!r} is produced by no earlier node (nodes must be in "
                                 "topological order, inputs must be the graph's input, an initializer or an "
                                 "earlier output)")
        steps.append((_child_name(node, taken), module.to(dtype), dynamic, node.output[0]))
        defined.add(node.output[0])
    output = alias.get(g.output[0].name, g.output[0].name)
    if output not in defined:
        raise ValueError(f"ONNX file {path}: the graph's output {output!r} is not computed from its input")
    return Graph(steps, inputs[0].name, output).eval()


def load(path):
    """The fastconv module (a :class:`~fastconv.onnx.graph.Graph`, in eval mode) that runs the ONNX model in
    ``path``. See :data:`fastconv.onnx.OPERATORS` for what it imports; anything else raises ValueError
    naming the operator, the node and the attribute."""
    path = Path(path)
    with _untrusted.reading(path, "ONNX file"):
        return _build(_parse(path), path)
