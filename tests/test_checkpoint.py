"""Checkpoints: exact round trips, exact resumption, atomic writes, clear errors on damaged files."""
import json

import numpy as np
import pytest

import fastconv.checkpoint as ckpt
import fastconv.nn as nn
from fastconv.models import lenet5
from fastconv.optim import SGD, Adam


def _steps(model, opt, rng, n):
    crit = nn.CrossEntropyLoss()
    for _ in range(n):
        x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
        model.zero_grad()
        crit(model(x), rng.integers(0, 10, 8))
        model.backward(crit.backward())
        opt.step()


@pytest.mark.parametrize("make_opt", [lambda p: Adam(p, 1e-3), lambda p: SGD(p, 0.01, momentum=0.9, nesterov=True)])
def test_save_load_gives_identical_outputs_and_identical_continued_training(tmp_path, make_opt):
    nn.manual_seed(3)
    model = lenet5()
    opt = make_opt(model.parameters())
    _steps(model, opt, np.random.default_rng(0), 3)
    ckpt.save(tmp_path / "c.npz", model, opt, {"epoch": 2, "step": 3})
    back = ckpt.load(tmp_path / "c.npz")
    assert back.position == {"epoch": 2, "step": 3}
    x = np.random.default_rng(9).standard_normal((4, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(back.model(x), model(x))
    _steps(model, opt, np.random.default_rng(1), 3)
    _steps(back.model, back.optimizer, np.random.default_rng(1), 3)
    for (k, a), b in zip(model.state_dict().items(), back.model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_load_into_an_existing_model(tmp_path):
    a = lenet5()
    ckpt.save(tmp_path / "c.npz", a)
    b = lenet5()
    assert ckpt.load(tmp_path / "c.npz", model=b).model is b
    np.testing.assert_array_equal(b.state_dict()["3.weight"], a.state_dict()["3.weight"])
    with pytest.raises(ValueError, match="architecture differs"):
        ckpt.load(tmp_path / "c.npz", model=lenet5(num_classes=4))


def test_truncated_and_damaged_files_raise(tmp_path):
    path = tmp_path / "c.npz"
    ckpt.save(path, lenet5(), Adam(lenet5().parameters()))
    raw = path.read_bytes()
    cases = {"truncated": raw[: len(raw) // 2], "empty": b"", "garbage": b"not a checkpoint" * 10}
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0xFF  # inside a stored array: the zip CRC catches it
    cases["flipped"] = bytes(flipped)
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match="damaged|not a fastconv"):
            ckpt.load(tmp_path / name)


def test_mismatched_files_raise(tmp_path):
    path = tmp_path / "c.npz"
    model = lenet5()
    ckpt.save(path, model)
    with np.load(path) as z:
        entries = {k: z[k] for k in z.files}
    header = json.loads(entries["header"].tobytes())

    def write(h, **arrays):
        e = dict(entries, **arrays)
        e["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
        np.savez(tmp_path / "m.npz", **e)
        return tmp_path / "m.npz"

    with pytest.raises(ValueError, match="version"):
        ckpt.load(write(dict(header, version=99)))
    with pytest.raises(ValueError, match="unknown layer type"):
        ckpt.load(write(dict(header, arch={"type": "Evil", "args": {}})))
    with pytest.raises(ValueError, match=r"0.weight.*shape"):
        ckpt.load(write(header, **{"model/0.weight": np.zeros((6, 1, 3, 3))}))
    with pytest.raises(ValueError, match="format"):
        ckpt.load(write(dict(header, format="other")))
    np.savez(tmp_path / "obj.npz", header=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="damaged|not a fastconv"):
        ckpt.load(tmp_path / "obj.npz")  # object arrays are never unpickled
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ckpt.load(tmp_path / "missing.npz")


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    model = lenet5()
    ckpt.save(path, model, position={"epoch": 1})
    before = path.read_bytes()

    def boom(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save(path, model, position={"epoch": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind
