"""IDX files, the bundled digits, and the verified download (served from 127.0.0.1, never the internet)."""
import gzip
import hashlib
import http.server
import struct
import threading
from functools import partial

import numpy as np
import pytest

from fastconv import data


def write_idx(path, array, gz=False):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return raw


def make_mnist_dir(d, n_train=30, n_test=20, gz=True, rng=None):
    rng = rng or np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, a in arrays.items():
        write_idx(d / (name + (".gz" if gz else "")), a, gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_dir_round_trip(tmp_path, gz):
    arrays = make_mnist_dir(tmp_path, gz=gz)
    s = data.load_mnist_dir(tmp_path)
    np.testing.assert_array_equal(s.x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(s.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert s.x_train.dtype == np.uint8 and s.y_train.dtype == np.int64


def test_damaged_idx_files_raise(tmp_path):
    good = write_idx(tmp_path / "good", np.zeros((3, 28, 28)))
    cases = {
        "magic": b"\x08\x03" + good[2:],
        "truncated": good[:-5],
        "trailing": good + b"\x00",
        "header": good[:7],
        "empty": b"",
        "badgzip": b"\x1f\x8b" + b"junk" * 10,
    }
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match="IDX file"):
            data.read_idx(tmp_path / name)


def test_mismatched_mnist_dirs_raise(tmp_path):
    make_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(29), gz=True)
    with pytest.raises(ValueError, match="30 images but 29 labels"):
        data.load_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(30, 12), gz=True)
    with pytest.raises(ValueError, match="digits 0-9"):
        data.load_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((30, 28, 27)), gz=True)
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        data.load_mnist_dir(tmp_path)
    make_mnist_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        data.load_mnist_dir(tmp_path)


def test_bundled_digits_split_is_stratified_and_deterministic():
    a, b = data.load_digits(), data.load_digits()
    assert a.x_train.shape == (4000, 28, 28) and a.x_test.shape == (1000, 28, 28)
    assert np.bincount(a.y_train).tolist() == [400] * 10 and np.bincount(a.y_test).tolist() == [100] * 10
    np.testing.assert_array_equal(a.x_test, b.x_test)
    train_rows = {r.tobytes() for r in a.x_train}
    assert not any(r.tobytes() in train_rows for r in a.x_test)  # no digit in both halves
    assert 20 < a.x_train.mean() < 60  # real MNIST digits: mostly dark background


def test_bundled_digits_are_checked_against_their_digest(tmp_path):
    """The shipped file ends in the package (no extra needed) and is verified on load: a changed pixel, a
    wrong shape or a file that is no npz at all each raise ValueError naming the file."""
    path = data.bundled_path()
    assert path.exists() and path.stat().st_size < 2_000_000
    images, labels = data._read_bundled(path)
    bad = images.copy()
    bad[17, 3, 4] ^= 1
    np.savez_compressed(tmp_path / "changed.npz", images=bad, labels=labels.astype(np.uint8))
    with pytest.raises(ValueError, match="digest"):
        data._read_bundled(tmp_path / "changed.npz")
    np.savez_compressed(tmp_path / "short.npz", images=images[:10], labels=labels[:10].astype(np.uint8))
    with pytest.raises(ValueError, match=r"\(5000, 28, 28\)"):
        data._read_bundled(tmp_path / "short.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="junk.npz"):
        data._read_bundled(tmp_path / "junk.npz")


def test_digits_regenerate_from_their_source(tmp_path, monkeypatch):
    """make_digits rebuilds the same contents from the CSV it documents (here written back from the bundled
    arrays in that CSV's layout) and refuses any other source."""
    import gzip

    from fastconv.datasets import make_digits

    images, labels = data._read_bundled(data.bundled_path())
    src = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(src, "wt") as f:
        np.savetxt(f, np.column_stack([images.reshape(5000, -1), labels]), fmt="%d", delimiter=",")
    monkeypatch.setattr(make_digits, "HERE", tmp_path)
    monkeypatch.setattr(make_digits, "SOURCE_SHA256", data.sha256(src))
    assert make_digits.main([str(src)]) == 0
    with np.load(tmp_path / "digits.npz") as z:
        np.testing.assert_array_equal(z["images"], images)
        np.testing.assert_array_equal(z["labels"], labels)
    monkeypatch.setattr(make_digits, "SOURCE_SHA256", "0" * 64)
    with pytest.raises(SystemExit, match="not the known source"):
        make_digits.main([str(src)])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_download_verifies_checksums(tmp_path, server):
    root, url = server
    make_mnist_dir(root, gz=True)
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.iterdir()}
    d = data.download_mnist(tmp_path / "cache", base_url=url, checksums=sums)
    s = data.load_mnist_dir(d)
    assert len(s.y_train) == 30 and len(s.y_test) == 20

    # a corrupted file: refused, nothing kept
    name = "t10k-images-idx3-ubyte.gz"
    raw = bytearray((root / name).read_bytes())
    raw[40] ^= 0xFF
    (root / name).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"{name}.*SHA-256.*refusing"):
        data.download_mnist(tmp_path / "cache2", base_url=url, checksums=sums)
    assert not (tmp_path / "cache2" / name).exists()
    assert not list((tmp_path / "cache2").glob(".*part"))

    # a truncated file: refused too
    (root / name).write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(ValueError, match="truncated or corrupted"):
        data.download_mnist(tmp_path / "cache3", base_url=url, checksums=sums)


def test_prepare_image_from_png_and_npy(tmp_path):
    from PIL import Image

    big = np.full((90, 60), 255, np.uint8)  # black digit "1" on white paper, not 28x28
    big[10:80, 27:33] = 0
    Image.fromarray(big).convert("RGB").save(tmp_path / "one.png")
    img = data.prepare_image(tmp_path / "one.png")
    assert img.shape == (28, 28) and img.dtype == np.uint8
    assert img[:, :3].max() == 0 and img[4:24, 12:16].mean() > 100  # light stroke, centred, 20 px tall
    np.save(tmp_path / "d.npy", np.eye(28))
    assert data.prepare_image(tmp_path / "d.npy").max() == 255
    np.save(tmp_path / "blank.npy", np.zeros((40, 40)))
    with pytest.raises(ValueError, match="blank"):
        data.prepare_image(tmp_path / "blank.npy")
    (tmp_path / "x.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="not an image"):
        data.prepare_image(tmp_path / "x.png")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="2-D grayscale"):
        data.prepare_image(tmp_path / "cube.npy")
