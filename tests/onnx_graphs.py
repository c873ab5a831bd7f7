"""Small ONNX graphs built with onnx.helper, and running one through onnxruntime and through fastconv."""
import numpy as np

onnx = __import__("pytest").importorskip("onnx")
ort = __import__("pytest").importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import fastconv.onnx as fo  # noqa: E402


def model(nodes, inits=(), dtype=np.float32, opset=17, x="x", y="y", inputs=None):
    """An ONNX model of ``nodes`` with one input ``x`` (dynamic shape) and one output ``y``."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    ins = inputs or [helper.make_tensor_value_info(x, elem, None)]
    g = helper.make_graph(nodes, "case", ins, [helper.make_tensor_value_info(y, elem, None)],
                          [numpy_helper.from_array(np.asarray(a), name) for name, a in inits])
    ops = [helper.make_opsetid("", opset)]
    return helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))


def save(proto, path):
    path.write_bytes(proto.SerializeToString())
    return path


def run_ort(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def check_against_ort(proto, x, path, rtol=1e-5, atol=1e-6):
    """Load ``proto`` with fastconv and compare its output with onnxruntime's; returns the fastconv module."""
    save(proto, path)
    m = fo.load(path)
    np.testing.assert_allclose(m(x), run_ort(path, x), rtol=rtol, atol=atol)
    return m


def node(op, inputs, outputs="y", **attrs):
    return helper.make_node(op, list(inputs), [outputs] if isinstance(outputs, str) else list(outputs),
                            name=f"{op.lower()}_node", **attrs)


__all__ = ["TensorProto", "helper", "model", "node", "numpy_helper", "onnx", "ort", "run_ort", "save",
           "check_against_ort"]
