"""Files from strangers: every loader refuses a hostile file (small on disk) with a ValueError naming the file,
the entry and the limit, under an address-space limit, and never lets MemoryError or RecursionError out."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastconv.checkpoint as ckpt
from fastconv import data
from fastconv.models import resnet20

HERE = Path(__file__).resolve().parent
HEADROOM_MB = 192  # address space the loaders may take beyond what the imports took


def test_hostile_files_are_refused_within_a_small_memory_budget(tmp_path):
    import hostile_files

    cases = hostile_files.write_index(tmp_path)
    assert sum(p.stat().st_size for _, p, _ in cases.values()) < 64 << 20  # all of them small on disk
    r = subprocess.run([sys.executable, str(HERE / "hostile_files.py"), str(tmp_path), str(HEADROOM_MB)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    for name, (_, path, words) in cases.items():
        got = report["results"][name]
        assert got.startswith("ValueError: "), (name, got)
        for word in (str(path), *words):
            assert word in got, (name, word, got)
    assert report["rss_growth_mb"] < 64, report["rss_growth_mb"]


def test_the_limits_leave_real_files_alone(tmp_path):
    """The same loaders, under the same limit, read legitimate files of each kind."""
    model = resnet20(in_channels=1)
    ckpt.save(tmp_path / "c.npz", model)
    np.savez_compressed(tmp_path / "z.npz", **dict(np.load(tmp_path / "c.npz")))  # a compressed checkpoint
    back = ckpt.load(tmp_path / "z.npz").model
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v, err_msg=k)
    images = np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8)
    import gzip
    import struct

    (tmp_path / "i.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 50, 28, 28) + images.tobytes()))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "i.gz"), images)


def test_safetensors_entries_are_checked_against_each_other(tmp_path):
    from fastconv import safetensors_format as sf

    model = resnet20(in_channels=1)
    sf.save(tmp_path / "w.safetensors", model)
    raw = (tmp_path / "w.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["1.bias"]["data_offsets"] = header["1.weight"]["data_offsets"][:]  # two entries on the same bytes
    head = json.dumps(header).encode()
    (tmp_path / "overlap.safetensors").write_bytes(len(head).to_bytes(8, "little") + head + raw[8 + n :])
    with pytest.raises(ValueError, match="overlap or leave a hole"):
        ckpt.load(tmp_path / "overlap.safetensors", model=resnet20(in_channels=1))
    with pytest.raises(ValueError, match="pass the model"):
        ckpt.load(tmp_path / "w.safetensors")
    (tmp_path / "short.safetensors").write_bytes(raw[:5])
    with pytest.raises(ValueError, match="truncated"):
        ckpt.load(tmp_path / "short.safetensors", model=model)
