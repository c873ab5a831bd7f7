"""ONNX import: every operator and attribute against onnxruntime, a DAG, float64, gradients, training on."""
import numpy as np
import pytest
from helpers import check_network_gradients
from onnx_graphs import check_against_ort, helper, model, node, numpy_helper, save

import fastconv.nn as nn
import fastconv.onnx as fo
from fastconv.models import lenet5
from fastconv.optim import SGD

R = np.random.default_rng(0)


def w(*shape):
    return R.standard_normal(shape).astype(np.float32)


# id -> (nodes, initializers, input shape, opset)
CASES = {
    "conv_pads_strides_dilations": ([node("Conv", "xWB", pads=[1, 0, 2, 1], strides=[2, 1], dilations=[1, 2])],
                                    [("W", w(4, 3, 3, 3)), ("B", w(4))], (2, 3, 11, 10), 17),
    "conv_group": ([node("Conv", "xW", group=3, kernel_shape=[3, 3])], [("W", w(6, 2, 3, 3))], (2, 6, 8, 8), 17),
    "conv_depthwise_same_upper": ([node("Conv", "xWB", group=6, auto_pad="SAME_UPPER")],
                                  [("W", w(6, 1, 4, 4)), ("B", w(6))], (2, 6, 9, 8), 17),
    "conv_same_lower": ([node("Conv", "xW", auto_pad="SAME_LOWER")], [("W", w(3, 2, 4, 2))],
                        (1, 2, 9, 9), 17),
    "conv_valid": ([node("Conv", "xW", auto_pad="VALID", strides=[2, 2])], [("W", w(5, 2, 3, 3))], (1, 2, 9, 8), 17),
    "maxpool": ([node("MaxPool", "x", kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1], dilations=[1, 2],
                      ceil_mode=1)], [], (2, 3, 10, 9), 17),
    "maxpool_same_upper": ([node("MaxPool", "x", kernel_shape=[2, 3], auto_pad="SAME_UPPER")], [], (1, 2, 7, 6), 17),
    "avgpool_exclude_pad": ([node("AveragePool", "x", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], [],
                            (2, 3, 9, 8), 17),
    "avgpool_include_pad_ceil": ([node("AveragePool", "x", kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 0, 1],
                                       count_include_pad=1, ceil_mode=1)], [], (2, 3, 8, 9), 17),
    "global_average_pool": ([node("GlobalAveragePool", "x")], [], (2, 5, 6, 7), 17),
    "activations": ([node("Relu", "x", "a"), node("Tanh", "a", "b"), node("Sigmoid", "b", "y")], [], (3, 4), 17),
    "gemm_transB_alpha_beta": ([node("Gemm", "xBC", transB=1, alpha=0.5, beta=2.0)], [("B", w(3, 8)), ("C", w(3))],
                               (5, 8), 17),
    "gemm_transA_row_bias": ([node("Gemm", "xBC", transA=1)], [("B", w(5, 4)), ("C", w(1, 4))], (5, 3), 17),
    "gemm_scalar_bias": ([node("Gemm", "xBC")], [("B", w(6, 2)), ("C", w())], (4, 6), 17),
    "gemm_no_bias": ([node("Gemm", "xB", transB=1)], [("B", w(2, 6))], (4, 6), 17),
    "matmul": ([node("MatMul", "xB")], [("B", w(8, 3))], (5, 8), 17),
    "add_broadcast_constant": ([node("Add", "xC")], [("C", w(3, 1, 1))], (2, 3, 4, 5), 17),
    "batch_normalization": ([node("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3, momentum=0.8)],
                            [("s", w(4)), ("b", w(4)), ("m", w(4)), ("v", np.abs(w(4)) + 0.5)], (2, 4, 5, 3), 15),
    "flatten_axis_2": ([node("Flatten", "x", axis=2)], [], (2, 3, 4, 5), 17),
    "flatten_default": ([node("Flatten", "x")], [], (2, 3, 4, 5), 17),
    "reshape_constant_node": ([helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(
        np.array([0, -1, 2], np.int64))), node("Reshape", "xs")], [], (2, 3, 4, 5), 17),
    "reshape_initializer": ([node("Reshape", "xs")], [("s", np.array([-1, 6], np.int64))], (2, 3, 4), 17),
    "dropout": ([node("Dropout", ["x", "r"])], [("r", np.array(0.3, np.float32))], (3, 4), 17),
    "identity": ([node("Identity", "x", "a"), node("Relu", "a")], [], (3, 4), 17),
    "softmax_last_axis": ([node("Softmax", "x")], [], (2, 3, 4, 5), 17),
    "softmax_axis_1": ([node("Softmax", "x", axis=1)], [], (2, 3, 4, 5), 17),
    "softmax_before_opset_13": ([node("Softmax", "x", axis=1)], [], (2, 3, 4, 5), 11),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_against_onnxruntime(tmp_path, case):
    nodes, inits, shape, opset = CASES[case]
    x = R.standard_normal(shape).astype(np.float32)
    check_against_ort(model(nodes, inits, opset=opset), x, tmp_path / "m.onnx")


def _dag(dtype=np.float32, head=True):
    """x -> conv -> relu -> (conv | maxpool) -> add -> add(relu) -> pool -> flatten -> gemm [-> softmax]; the
    relu's output feeds three nodes."""
    nodes = [node("Conv", ["x", "w1", "b1"], "a", pads=[1, 1, 1, 1]), node("Relu", "a", "r"),
             node("Conv", ["r", "w2"], "c", pads=[1, 1, 1, 1], group=2),
             node("MaxPool", "r", "p", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             node("Add", "cp", "s"), node("Add", "sr", "t"), node("GlobalAveragePool", "t", "g"),
             node("Flatten", "g", "f"), node("Gemm", ["f", "fw", "fb"], "logits", transB=1)]
    g = np.random.default_rng(7)
    inits = [(k, g.standard_normal(s)) for k, s in (("w1", (4, 2, 3, 3)), ("b1", (4,)), ("w2", (4, 2, 3, 3)),
                                                   ("fw", (3, 4)), ("fb", (3,)))]
    if head:
        nodes.append(node("Softmax", ["logits"], "y"))
    for n in nodes:
        n.name = ""  # (unnamed nodes, as some exporters write them)
    return model(nodes, [(k, v.astype(dtype)) for k, v in inits], dtype=dtype, y="y" if head else "logits")


def test_a_dag_with_branches_and_shared_values(tmp_path):
    x = R.standard_normal((3, 2, 8, 8)).astype(np.float32)
    m = check_against_ort(_dag(), x, tmp_path / "m.onnx")
    assert isinstance(m, fo.Graph) and sum(type(s[1]).__name__ == "Add" for s in m.steps) == 2


def test_float64_graph_runs_in_float64(tmp_path):
    x = R.standard_normal((3, 2, 8, 8))
    m64 = fo.load(save(_dag(np.float64), tmp_path / "m64.onnx"))
    m32 = check_against_ort(_dag(np.float32), x.astype(np.float32), tmp_path / "m32.onnx")
    y = m64(x)
    assert y.dtype == np.float64 and all(p.dtype == np.float64 for p in m64.parameters())
    np.testing.assert_allclose(y, m32(x.astype(np.float32)), rtol=1e-5, atol=1e-6)


def test_dag_gradients_against_finite_differences(tmp_path):
    m = fo.load(save(_dag(np.float64, head=False), tmp_path / "m.onnx")).train()
    x = R.standard_normal((2, 2, 6, 6))
    check_network_gradients(m, x, np.array([0, 2]), np.random.default_rng(1), samples=4)


def test_an_imported_lenet_trains_on_like_the_original(tmp_path):
    nn.manual_seed(5)
    original = lenet5()
    fo.export(original, tmp_path / "m.onnx", (1, 1, 28, 28))
    imported = fo.load(tmp_path / "m.onnx").train()
    crit = nn.CrossEntropyLoss()
    rng = np.random.default_rng(2)
    opts = [SGD(m.parameters(), 0.05, momentum=0.9) for m in (original, imported)]
    for _ in range(3):
        x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
        labels = rng.integers(0, 10, 8)
        for m, opt in zip((original, imported), opts):
            m.zero_grad()
            crit(m(x), labels)
            m.backward(crit.backward())
            opt.step()
    for (k, a), b in zip(original.state_dict().items(), imported.state_dict().values()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=k)


def test_imported_names_follow_the_initializers(tmp_path):
    nodes = [node("Conv", ["x", "features.0.weight", "features.0.bias"], "a"), node("Relu", "a", "b"),
             node("Flatten", "b", "c"), node("Gemm", ["c", "classifier.weight", "classifier.bias"], "y", transB=1)]
    inits = [("features.0.weight", w(2, 1, 3, 3)), ("features.0.bias", w(2)), ("classifier.weight", w(3, 8)),
             ("classifier.bias", w(3))]
    m = check_against_ort(model(nodes, inits), R.standard_normal((2, 1, 4, 4)).astype(np.float32), tmp_path / "m.onnx")
    assert list(m.state_dict()) == [k for k, _ in inits]
