"""Hostile files, each small on disk, for every loader; run as a script, it loads each one under an
address-space limit and reports what happened (see test_untrusted.py)."""
import gzip
import io
import json
import resource
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np


def _npy_header(shape, dtype="<f4"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _checkpoint(path, arch, members, compress=zipfile.ZIP_STORED):
    """A checkpoint zip with the given architecture and (name -> bytes or (header, n_zero_bytes)) members."""
    header = json.dumps({"format": "fastconv-checkpoint", "version": 1, "arch": arch, "position": {}}).encode()
    with zipfile.ZipFile(path, "w", compress) as zf:
        with zf.open("header.npy", "w") as f:
            f.write(_npy_header((len(header),), "|u1") + header)
        for name, body in members.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                if isinstance(body, bytes):
                    f.write(body)
                else:
                    head, zeros = body
                    f.write(head)
                    chunk = bytes(1 << 24)
                    for i in range(0, zeros, len(chunk)):
                        f.write(chunk[: min(len(chunk), zeros - i)])
    return path


def _linear(i, o):
    return {"type": "Sequential", "children": [{"type": "Linear", "args": {"in_features": i, "out_features": o,
                                                                           "bias": False}}]}


def _safetensors(path, header, data=b""):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def build(d):
    """name -> (loader, path, words the refusal must contain)."""
    d = Path(d)
    small = {"model/0.weight": _npy_header((4, 2)) + bytes(32)}
    cases = {
        "checkpoint absurd layer": ("checkpoint", _checkpoint(d / "absurd.npz", _linear(10**6, 10**6), small),
                                    ["model/0.weight", "(4, 2)", "(1000000, 1000000)"]),
        "checkpoint stored shape differs": ("checkpoint", _checkpoint(
            d / "shape.npz", _linear(3, 4), {"model/0.weight": _npy_header((4, 2)) + b"\xff" * 7}),
            ["model/0.weight", "declares shape (4, 2)"]),
        "checkpoint header declares gigabytes": ("checkpoint", _checkpoint(
            d / "huge_npy.npz", _linear(2, 4), {"model/0.weight": _npy_header((1 << 40,)) + bytes(16)}),
            ["model/0.weight", "declares shape (1099511627776,)"]),
        "checkpoint compressed bomb": ("checkpoint", _checkpoint(
            d / "bomb.npz", _linear(8192, 16384), {"model/0.weight": (_npy_header((16384, 8192)), 1 << 29)},
            zipfile.ZIP_DEFLATED), ["decompression bomb", "limit of 32x"]),
        "checkpoint nested json": ("checkpoint", _raw_header_checkpoint(d / "json.npz", b"[" * 200000 + b"]" * 200000),
                                   ["nests"]),
        "checkpoint nested containers": ("checkpoint", _checkpoint(d / "deep.npz", _nested(40), {}),
                                         ["deeper than 32"]),
        "safetensors header length": ("safetensors", _huge_length(d / "len.safetensors"), ["header of", "limit"]),
        "safetensors nested json": ("safetensors", _safetensors(d / "json.safetensors", b"[" * 200000 + b"]" * 200000),
                                    ["nests"]),
        "safetensors shape beyond data": ("safetensors", _safetensors(
            d / "shape.safetensors", {"0.weight": {"dtype": "F32", "shape": [1 << 40, 1 << 10], "data_offsets": [0, 32]}},
            bytes(32)), ["'0.weight'", "needs 4503599627370496 bytes"]),
        "safetensors offsets beyond the file": ("safetensors", _safetensors(
            d / "offsets.safetensors", {"0.weight": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 32]}}),
            ["data_offsets", "outside"]),
        "safetensors differs from the model": ("safetensors", _safetensors(
            d / "model.safetensors", {"0.weight": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}},
            bytes(48)), ["'0.weight' has shape (3, 4), the model needs (2, 4)"]),
        "idx gzip trailing gigabytes": ("idx", _gz_trailing(d / "trailing-idx1-ubyte.gz"), ["trailing data"]),
        "idx gzip declares gigabytes": ("idx", _gz_idx(d / "declares-idx3-ubyte.gz", (1 << 31, 28, 28), bytes(100)),
                                        ["decompression bomb"]),
        "idx raw declares gigabytes": ("idx", _raw_idx(d / "raw-idx3-ubyte", (1 << 31, 28, 28)), ["truncated"]),
    }
    try:
        import onnx  # noqa: F401
    except ImportError:
        return cases
    cases["onnx initializer declares terabytes"] = ("onnx", _onnx_huge(d / "huge.onnx"), ["initializer 'W'", "limit"])
    return cases


def _raw_header_checkpoint(path, header):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("header.npy", _npy_header((len(header),), "|u1") + header)
    return path


def _nested(depth):
    s = {"type": "ReLU", "args": {}}
    for _ in range(depth):
        s = {"type": "Sequential", "children": [s]}
    return s


def _huge_length(path):
    path.write_bytes(struct.pack("<Q", 1 << 62) + b"{}")
    return path


def _idx(dims, dtype_code=0x08):
    return bytes([0, 0, dtype_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def _gz_idx(path, dims, payload):
    path.write_bytes(gzip.compress(_idx(dims) + payload))
    return path


def _gz_trailing(path):
    """Labels (10,) followed by 2 GiB of zeros: 128 gzip members of 16 MiB each (a few MB on disk)."""
    zeros = gzip.compress(bytes(1 << 24), 9)
    path.write_bytes(gzip.compress(_idx((10,)) + bytes(range(10))) + zeros * 128)
    return path


def _raw_idx(path, dims):
    path.write_bytes(_idx(dims) + bytes(1000))
    return path


def _onnx_huge(path):
    from onnx import TensorProto, helper

    t = helper.make_tensor("W", TensorProto.FLOAT, [2, 1, 3, 3], np.ones(18, np.float32).tobytes(), raw=True)
    t.dims[:] = [1 << 20, 1 << 20, 3, 3]
    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [t])
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString())
    return path


def _load(loader, path):
    if loader == "checkpoint":
        from fastconv import checkpoint

        return checkpoint.load(path)
    if loader == "safetensors":
        from fastconv import checkpoint, nn

        return checkpoint.load(path, model=nn.Sequential(nn.Linear(4, 2, bias=False)))
    if loader == "idx":
        from fastconv import data

        return data.read_idx(path)
    from fastconv import onnx

    return onnx.load(path)


def main(d, headroom_mb):
    import fastconv.checkpoint  # noqa: F401  (everything imported before the limit is set)
    import fastconv.data  # noqa: F401
    try:
        import fastconv.onnx  # noqa: F401
        import onnx  # noqa: F401
    except ImportError:
        pass
    cases = build_index(d)
    vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + headroom_mb << 20, resource.RLIM_INFINITY))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results = {}
    for name, (loader, path, words) in cases.items():
        try:
            _load(loader, path)
            results[name] = "loaded"
        except ValueError as e:
            results[name] = "ValueError: " + str(e)
        except BaseException as e:  # noqa: BLE001  (what the test must never see)
            results[name] = f"{type(e).__name__}: {e}"
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"results": results, "rss_growth_mb": grew}))


def build_index(d):
    return {k: (v[0], Path(v[1]), v[2]) for k, v in json.loads((Path(d) / "index.json").read_text()).items()}


def write_index(d):
    cases = build(d)
    (Path(d) / "index.json").write_text(json.dumps({k: (v[0], str(v[1]), v[2]) for k, v in cases.items()}))
    return cases


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
