"""Digit data: MNIST-format IDX files, the 5,000 real MNIST digits shipped with fastconv, and a verified
download of the full MNIST.

Every loader returns a :class:`Split` of uint8 images (N, 28, 28) and int64 labels (N,) for training and test.
``to_input`` turns uint8 images into the normalised float32 NCHW batches the models take.
"""
import gzip
import hashlib
import os
import struct
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _untrusted

MEAN, STD = 0.1307, 0.3081  # MNIST's pixel mean and standard deviation (of x / 255)

# SHA-256 of the bundled digits' contents (uint8 images, then uint8 labels; see datasets/make_digits.py)
DIGITS_SHA256 = "809ec085d551285cf9efad12c42a6aead98c62f96eb9936cc5b778870773e50d"

MNIST_FILES = {  # name -> SHA-256 of the published gzip file
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
               0x0E: np.dtype(">f8")}


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str = ""

    def __repr__(self):
        return f"Split({self.name!r}: {len(self.y_train)} train, {len(self.y_test)} test)"


def to_input(images):
    """uint8 images (N, 28, 28) -> float32 (N, 1, 28, 28), scaled to [0, 1] and standardised."""
    return ((np.asarray(images, np.float32) / 255.0 - MEAN) / STD)[:, None]


def _open(path):
    """(stream, gzipped) of an IDX file, raw or gzipped."""
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return (gzip.open(path, "rb") if gz else open(path, "rb")), gz


def _read_exactly(f, n):
    """n bytes from f, read in bounded chunks (a header that declares gigabytes costs only what is there)."""
    out = bytearray()
    while len(out) < n:
        chunk = f.read(min(n - len(out), 1 << 24))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def read_idx(path):
    """Read an IDX file (gzipped or raw), checking the magic number, the dimensions and the payload size.
    The declared payload is checked against the file before it is read (a gzipped file may expand at most
    ``MAX_EXPANSION`` times), and data after the payload is refused without reading it all."""
    path = Path(path)
    try:
        f, gz = _open(path)
        with f:
            raw = f.read(4)
            if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
                raise ValueError(f"IDX file {path} has a bad magic number {raw[:4].hex() or '(empty file)'}: "
                                 "needs 00 00 <type> <ndim> as in MNIST")
            ndim = raw[3]
            head = f.read(4 * ndim)
            if len(head) < 4 * ndim:
                raise ValueError(f"IDX file {path} is truncated inside its header ({4 + len(head)} bytes)")
            dims = struct.unpack(f">{ndim}I", head)
            dtype = np.dtype(_IDX_DTYPES[raw[2]])
            need = _untrusted.n_elements(dims) * dtype.itemsize
            on_disk = path.stat().st_size
            if gz:
                _untrusted.check_expansion(path, "IDX file", f"its payload of shape {dims}", need, on_disk)
            elif need > on_disk:
                raise ValueError(f"IDX file {path} declares shape {dims} ({need} bytes of data) but the file has "
                                 f"{on_disk} bytes: truncated")
            data = _read_exactly(f, need)
            trailing = len(f.read(1))
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"IDX file {path} cannot be read (damaged gzip?): {e}") from None
    if len(data) < need:
        raise ValueError(f"IDX file {path} declares shape {dims} ({need} bytes of data) but holds {len(data)} "
                         "bytes: truncated")
    if trailing:
        raise ValueError(f"IDX file {path} declares shape {dims} ({need} bytes of data) but holds more: "
                         "trailing data")
    return np.frombuffer(data, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _find(directory, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"{directory} has no {stem}[.gz]: an MNIST directory needs train-images-idx3-ubyte, "
                            "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may be .gz)")


def _check_pair(images, labels, what):
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{what} images must be uint8 of shape (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{what} labels must be uint8 of shape (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{what} has {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{what} labels must be digits 0-9, got a {labels.max()}")
    return images, labels.astype(np.int64)


def load_mnist_dir(directory):
    """The four MNIST IDX files from ``directory`` (gzipped or raw) as a Split."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"MNIST directory {d} does not exist")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        parts[split] = _check_pair(read_idx(_find(d, f"{prefix}-images-idx3-ubyte")),
                                   read_idx(_find(d, f"{prefix}-labels-idx1-ubyte")), f"{d} {split}")
    return Split(*parts["train"], *parts["test"], name=f"mnist:{d}")


def bundled_path():
    """Path of the bundled digits, ``fastconv/datasets/digits.npz``."""
    return Path(__file__).resolve().parent / "datasets" / "digits.npz"


def _read_bundled(path):
    """The bundled (images, labels), checked against their shapes and their contents digest."""
    from .datasets.make_digits import contents_digest

    try:
        with np.load(path, allow_pickle=False) as z:
            if sorted(z.files) != ["images", "labels"]:
                raise ValueError(f"members {sorted(z.files)}, needs images and labels")
            images, labels = z["images"], z["labels"]
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"bundled digits {path} cannot be read (damaged install?): {e}") from None
    if images.shape != (5000, 28, 28) or images.dtype != np.uint8 or labels.shape != (5000,) or labels.dtype != np.uint8:
        raise ValueError(f"bundled digits {path} should hold uint8 images (5000, 28, 28) and labels (5000,), got "
                         f"{images.dtype} {images.shape} and {labels.dtype} {labels.shape}")
    if contents_digest(images, labels) != DIGITS_SHA256:
        raise ValueError(f"bundled digits {path} do not match their digest (damaged install?)")
    return images, labels.astype(np.int64)


def load_digits(n_test_per_class=100, seed=0):
    """The 5,000 bundled MNIST digits, split per class (stratified, deterministic) into 4,000 train and
    1,000 test digits."""
    images, labels = _read_bundled(bundled_path())
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:n_test_per_class])
        train.append(idx[n_test_per_class:])
    train, test = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    return Split(images[train], labels[train], images[test], labels[test], name="digits")


def cache_dir():
    """Where downloads go: $FASTCONV_DATA, else ~/.cache/fastconv."""
    return Path(os.environ.get("FASTCONV_DATA") or Path.home() / ".cache" / "fastconv")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_mnist(directory=None, base_url=None, checksums=None, timeout=60):
    """Download the four MNIST files into ``directory`` (default: the cache) and verify each SHA-256; a file
    already there with the right hash is kept. A mismatch raises ValueError and keeps nothing."""
    d = Path(directory) if directory else cache_dir() / "mnist"
    base_url = base_url or os.environ.get("FASTCONV_MNIST_URL") or MNIST_URL
    checksums = checksums or MNIST_FILES
    d.mkdir(parents=True, exist_ok=True)
    for name, digest in checksums.items():
        target = d / name
        if target.exists() and sha256(target) == digest:
            continue
        tmp = d / f".{name}.part"
        try:
            with urllib.request.urlopen(base_url.rstrip("/") + "/" + name, timeout=timeout) as r, open(tmp, "wb") as f:
                while block := r.read(1 << 20):
                    f.write(block)
            got = sha256(tmp)
            if got != digest:
                raise ValueError(f"downloaded {name} has SHA-256 {got}, expected {digest}: refusing it "
                                 "(truncated or corrupted download)")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return d


def load(name="digits"):
    """``"digits"`` (the bundled 5k), ``"mnist"`` (downloaded and verified) or a directory of IDX files."""
    if name == "digits":
        return load_digits()
    if name == "mnist":
        return load_mnist_dir(download_mnist())
    return load_mnist_dir(name)


def prepare_image(path):
    """An image file (PNG/JPEG/... via Pillow, or .npy) as a uint8 28x28 MNIST-style digit.

    A 28x28 grayscale image is taken as it is (inverted first if its background is light). Anything else is
    prepared the way MNIST was: grayscale, a light digit on a dark background, cropped to the digit, scaled so
    its longer side is 20 pixels, and placed in a 28x28 frame with its centre of mass at the centre.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} is not a readable .npy array: {e}") from None
        if a.ndim == 3 and a.shape[2] in (1, 3, 4):
            a = a[..., :3].mean(axis=2) if a.shape[2] > 1 else a[..., 0]
        if a.ndim != 2 or a.dtype.kind not in "uif" or min(a.shape) < 1:
            raise ValueError(f"{path} must hold a 2-D grayscale image (H, W), got {a.dtype} {a.shape}")
        a = a.astype(np.float64)
        if a.max() <= 1.0:
            a = a * 255.0
        gray = np.clip(a, 0, 255)
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                gray = np.asarray(im.convert("L"), np.float64)
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{path} is not an image Pillow can read: {e}") from None
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:  # dark digit on a light background: invert to MNIST's polarity
        gray = 255.0 - gray
    if gray.shape == (28, 28):
        return gray.round().astype(np.uint8)
    ink = gray > 0.2 * gray.max() if gray.max() > 0 else np.zeros(gray.shape, bool)
    if gray.max() < 30 or not ink.any():
        raise ValueError(f"{path} looks blank: no digit stands out from the background")
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    crop = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    from PIL import Image

    scale = 20.0 / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((w, h), Image.LANCZOS), np.float64)
    frame = np.zeros((28, 28))
    mass = small.sum()
    cy = (small.sum(1) @ np.arange(h)) / mass if mass else h / 2
    cx = (small.sum(0) @ np.arange(w)) / mass if mass else w / 2
    top = int(np.clip(round(14 - cy), 0, 28 - h))
    left = int(np.clip(round(14 - cx), 0, 28 - w))
    frame[top : top + h, left : left + w] = small
    return np.clip(frame, 0, 255).round().astype(np.uint8)
