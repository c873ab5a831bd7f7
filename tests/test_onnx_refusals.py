"""ONNX import refuses, by name, what it cannot run, and files that are damaged or hostile."""
import numpy as np
import pytest
from onnx_graphs import TensorProto, helper, model, node, numpy_helper, save

import fastconv.onnx as fo

W = np.ones((2, 1, 3, 3), np.float32)


def _refuses(tmp_path, proto, *words):
    path = save(proto, tmp_path / "m.onnx")
    with pytest.raises(ValueError) as e:
        fo.load(path)
    for word in (str(path), *words):
        assert word in str(e.value), (word, str(e.value))


@pytest.mark.parametrize("nodes,inits,words", [
    ([node("LRN", "x", size=3)], [], ["operator LRN", "lrn_node"]),
    ([node("Conv", "xW", auto_pad="SAME_UPPER", strides=[2, 2])], [("W", W)], ["conv_node", "attribute auto_pad"]),
    ([node("Conv", "xW", auto_pad="SAME_UPPER", pads=[1, 1, 1, 1])], [("W", W)], ["attribute pads"]),
    ([node("Conv", "xW", foo=3)], [("W", W)], ["conv_node", "attribute foo"]),
    ([node("Conv", "xW", kernel_shape=[5, 5])], [("W", W)], ["attribute kernel_shape"]),
    ([node("Conv", "xW", pads=[0, 0, 1 << 40, 0])], [("W", W)], ["attribute pads"]),
    ([node("Conv", "xW", strides=[0, 1])], [("W", W)], ["attribute strides"]),
    ([node("Conv", "xW", group=4)], [("W", W)], ["conv_node", "groups=4"]),
    ([node("Conv", "xW")], [("W", np.ones((2, 1, 3), np.float32))], ["2-D convolutions"]),
    ([node("Relu", "x", "r"), node("Conv", "xr")], [], ["input 1 (W) must be a constant"]),
    ([node("MaxPool", "x", kernel_shape=[2, 2], storage_order=1)], [], ["maxpool_node", "attribute storage_order"]),
    ([node("MaxPool", "x", ["y", "idx"], kernel_shape=[2, 2])], [], ["only its first output"]),
    ([node("MaxPool", "x")], [], ["attribute kernel_shape"]),
    ([node("AveragePool", "x", kernel_shape=[2, 2], dilations=[2, 2])], [], ["attribute dilations"]),
    ([node("BatchNormalization", ["x", "s", "s", "s", "s"], training_mode=1)], [("s", np.ones(2, np.float32))],
     ["attribute training_mode"]),
    ([node("BatchNormalization", ["x", "s", "s", "s", "t"])], [("s", np.ones(2, np.float32)), ("t", np.ones(3, np.float32))],
     ["must be 1-D of one size"]),
    ([node("Gemm", "xBC")], [("B", np.ones((3, 2), np.float32)), ("C", np.ones((4, 2), np.float32))], ["C has shape"]),
    ([node("MatMul", "xx")], [], ["input 1 (B) must be a constant"]),
    ([node("Reshape", "xs", allowzero=1)], [("s", np.array([0, 4], np.int64))], ["attribute allowzero"]),
    ([node("Reshape", "xs")], [("s", np.array([-1, -1], np.int64))], ["one -1"]),
    ([node("Relu", "z")], [], ["input 'z' is produced by no earlier node"]),
    ([node("Relu", "x", "a")], [], ["output 'y' is not computed"]),
])
def test_unsupported_operators_and_attributes_are_named(tmp_path, nodes, inits, words):
    _refuses(tmp_path, model(nodes, inits), *words)


def test_graph_shape_and_type_refusals(tmp_path):
    two_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "xz"]
    _refuses(tmp_path, model([node("Add", "xz")], inputs=two_inputs), "one input")
    int_input = [helper.make_tensor_value_info("x", TensorProto.INT8, None)]
    _refuses(tmp_path, model([node("Relu", "x")], inputs=int_input), "element type")
    _refuses(tmp_path, model([node("Conv", "xW")], [("W", W.astype(np.float64))]), "one float type")
    custom = model([node("Relu", "x")])
    custom.graph.node[0].domain = "com.example"
    _refuses(tmp_path, custom, "domain 'com.example'")


def test_tensors_that_do_not_fill_their_shape_or_live_elsewhere(tmp_path):
    proto = model([node("Conv", "xW")], [("W", W)])
    t = proto.graph.initializer[0]
    t.dims[:] = [1 << 20, 1 << 20, 3, 3]  # declares 38 TB, holds 72 bytes
    _refuses(tmp_path, proto, "initializer 'W'", "over the limit")
    t.dims[:] = [4, 1, 3, 3]
    _refuses(tmp_path, proto, "initializer 'W'", "declares FLOAT (4, 1, 3, 3) (144 bytes) but holds 72 bytes")
    external = model([node("Conv", "xW")], [("W", W)])
    t = external.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../../etc/passwd")
    _refuses(tmp_path, external, "external file")
    typed = model([node("Conv", "xW")])
    typed.graph.initializer.append(helper.make_tensor("W", TensorProto.FLOAT, [2, 1, 3, 3], [1.0] * 18))
    del typed.graph.initializer[0].float_data[-1]
    _refuses(tmp_path, typed, "(18 values) but holds 17")
    strings = model([node("Reshape", "xs")])
    strings.graph.initializer.append(helper.make_tensor("s", TensorProto.STRING, [1], [b"a"]))
    _refuses(tmp_path, strings, "data type 8")


def test_damaged_and_hostile_bytes(tmp_path):
    good = model([node("Conv", "xW")], [("W", W)]).SerializeToString()
    for name, raw in {"truncated": good[: len(good) // 2], "garbage": b"\xff" * 64, "empty": b""}.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match="damaged|holds no graph"):
            fo.load(tmp_path / name)
    # a graph whose node has a graph attribute whose node has ... 3,000 levels deep: protobuf's depth limit
    # refuses it, and it never becomes a RecursionError
    nested = b""
    for _ in range(3000):
        nested = _field(0x0A, _field(0x2A, _field(0x32, nested)))  # graph.node -> node.attribute -> attribute.g
    (tmp_path / "nested").write_bytes(_field(0x3A, nested) + b"\x42\x02\x10\x11")  # model.graph, opset 17
    with pytest.raises(ValueError, match="damaged|nests"):
        fo.load(tmp_path / "nested")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fo.load(tmp_path / "absent.onnx")


def _field(tag, body):
    return bytes([tag]) + _varint(len(body)) + body


def _varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_constant_folding_of_constants(tmp_path):
    """An Add of two constants is computed at load time and feeds the next node as a constant."""
    from onnx_graphs import check_against_ort

    proto = model([node("Add", "ab", "c"), helper.make_node("Add", ["x", "c"], ["y"], name="second")], [("a", np.ones((3,), np.float32)),
                                                              ("b", np.arange(3, dtype=np.float32))])
    m = check_against_ort(proto, np.zeros((2, 3), np.float32), tmp_path / "m.onnx")
    assert len(m.steps) == 1
    assert numpy_helper  # (imported for the test modules that build tensors by hand)
