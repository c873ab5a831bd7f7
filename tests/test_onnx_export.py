"""ONNX export: every layer, LeNet-5 and ResNet-20, against onnxruntime; round trips; the command line."""
import numpy as np
import pytest
from onnx_graphs import onnx, run_ort

import fastconv.checkpoint as ckpt
import fastconv.nn as nn
import fastconv.onnx as fo
from fastconv import cli
from fastconv.models import lenet5, resnet20


def _settled(model, x):
    """A model whose BatchNorm running statistics moved away from their start, in eval mode."""
    model.train()
    for _ in range(2):
        model(x)
    return model.eval()


def _every_layer():
    return nn.Sequential(
        nn.Conv2D(3, 6, 3, stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2)), nn.Tanh(),
        nn.Conv2D(6, 6, 3, padding="same", groups=3), nn.Sigmoid(),
        nn.Conv2D(6, 6, 3, padding=1, groups=6, bias=False), nn.BatchNorm2D(6), nn.ReLU(),
        nn.MaxPool2D(3, stride=2, padding=1, dilation=(1, 2), ceil_mode=True),
        nn.AvgPool2D(2, stride=1, padding=((0, 1), (1, 0)), count_include_pad=False),
        nn.AvgPool2D(3, stride=2, padding=1, ceil_mode=True),
        nn.Residual(nn.Sequential(nn.Conv2D(6, 6, 1), nn.ReLU())),
        nn.Residual(nn.Sequential(nn.Conv2D(6, 8, 3, padding=1), nn.BatchNorm2D(8)),
                    shortcut=nn.Sequential(nn.Conv2D(6, 8, 1, bias=False))),
        nn.Dropout(0.5), nn.GlobalAvgPool2D(), nn.Flatten(), nn.Linear(8, 5, bias=False), nn.ReLU(), nn.Linear(5, 3))


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "every_layer"])
def test_export_matches_onnxruntime_at_any_batch_and_round_trips(tmp_path, name):
    rng = np.random.default_rng(0)
    nn.manual_seed(1)
    shape = (3, 23, 19) if name == "every_layer" else (1, 28, 28)
    model = {"lenet5": lenet5, "resnet20": lambda: resnet20(in_channels=1), "every_layer": _every_layer}[name]()
    model = _settled(model, rng.standard_normal((16, *shape)).astype(np.float32))
    path = tmp_path / "m.onnx"
    fo.export(model, path, (1, *shape))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == 8 and proto.opset_import[0].version == 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    back = fo.load(path)
    for n in (1, 5):
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        y = model(x)
        np.testing.assert_allclose(run_ort(path, x), y, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(back(x), y, rtol=1e-5, atol=1e-6)
    assert list(back.state_dict()) == list(model.state_dict())  # the file's initializers keep the state-dict names


@pytest.mark.parametrize("opset", [13, 21])
def test_other_opsets(tmp_path, opset):
    model = lenet5().eval()
    fo.export(model, tmp_path / "m.onnx", (1, 1, 28, 28), opset=opset)
    x = np.random.default_rng(2).standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), model(x), rtol=1e-4, atol=1e-5)


def test_float64_export_keeps_float64(tmp_path):
    model = resnet20(in_channels=1).to(np.float64).eval()
    fo.export(model, tmp_path / "m.onnx", (1, 1, 12, 12))
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = np.random.default_rng(3).standard_normal((2, 1, 12, 12))
    back = fo.load(tmp_path / "m.onnx")
    y = back(x)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, model(x), rtol=1e-12, atol=1e-13)


def test_export_refuses_what_it_cannot_write(tmp_path):
    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="Custom has no ONNX form"):
        fo.export(nn.Sequential(nn.ReLU(), Custom()), tmp_path / "m.onnx", (1, 1, 4, 4))
    with pytest.raises(ValueError, match="opset"):
        fo.export(lenet5(), tmp_path / "m.onnx", (1, 1, 28, 28), opset=9)
    with pytest.raises(ValueError, match="input_shape"):
        fo.export(lenet5(), tmp_path / "m.onnx", (1, 28, 28))
    with pytest.raises(ValueError):  # LeNet-5's Linear(400, ...) needs 28x28 images
        fo.export(lenet5(), tmp_path / "m.onnx", (1, 1, 32, 32))
    assert not (tmp_path / "m.onnx").exists()


def test_export_leaves_training_mode_as_it_was(tmp_path):
    model = resnet20(in_channels=1).train()
    before = model.state_dict()
    fo.export(model, tmp_path / "m.onnx", (1, 1, 8, 8))
    assert all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_cli_export_onnx_and_safetensors(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    model = _settled(resnet20(in_channels=1), np.random.default_rng(4).standard_normal((8, 1, 28, 28)).astype(np.float32))
    ckpt.save(tmp_path / "c.npz", model)
    assert cli.main(["export", str(tmp_path / "c.npz"), str(tmp_path / "m.onnx")]) == 0
    x = np.random.default_rng(5).standard_normal((3, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), model(x), rtol=1e-4, atol=1e-5)
    assert cli.main(["export", str(tmp_path / "c.npz"), str(tmp_path / "w.safetensors")]) == 0
    stored = safetensors_numpy.load_file(str(tmp_path / "w.safetensors"))
    state = model.state_dict()
    assert set(stored) == set(state)
    for k, v in state.items():
        assert stored[k].dtype == v.dtype and stored[k].shape == v.shape, k
        np.testing.assert_array_equal(stored[k], v, err_msg=k)
    assert cli.main(["export", str(tmp_path / "c.npz"), str(tmp_path / "m.txt")]) == 2


def test_safetensors_into_pytorch_and_back(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    from fastconv.benchmarks.peers import torch_resnet20

    model = _settled(resnet20(in_channels=1), np.random.default_rng(6).standard_normal((8, 1, 28, 28)).astype(np.float32))
    ckpt.save(tmp_path / "c.npz", model)
    assert cli.main(["export", str(tmp_path / "c.npz"), str(tmp_path / "w.safetensors")]) == 0
    net = torch_resnet20(in_channels=1)
    net.load_state_dict(safetensors_torch.load_file(str(tmp_path / "w.safetensors")))
    x = np.random.default_rng(7).standard_normal((3, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(net.eval()(torch.from_numpy(x)).numpy(), model(x), rtol=1e-4, atol=1e-5)
    safetensors_torch.save_file(net.state_dict(), str(tmp_path / "t.safetensors"))
    again = ckpt.load(tmp_path / "t.safetensors", model=resnet20(in_channels=1)).model.eval()
    np.testing.assert_allclose(again(x), model(x), rtol=1e-6, atol=1e-6)


def test_without_the_onnx_package_the_cli_says_what_to_install(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    ckpt.save(tmp_path / "c.npz", lenet5())
    monkeypatch.setattr(builtins, "__import__", no_onnx)
    assert cli.main(["export", str(tmp_path / "c.npz"), str(tmp_path / "m.onnx")]) == 2
    assert "pip install 'fastconv[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
