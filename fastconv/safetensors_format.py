"""The safetensors format, written and read without its library: an 8-byte little-endian header length, a
JSON header mapping each name to its dtype, shape and byte range, then the raw little-endian data.

``save`` writes a model's state dict under PyTorch's names (buffers included), which
``safetensors.torch.load_file`` plus ``load_state_dict`` read into the same PyTorch network. ``read`` checks
the header against the file's size and against the shapes the caller needs before any data is read.
"""
import json
import struct
from pathlib import Path

import numpy as np

from . import _untrusted

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
           "U8": "u1", "BOOL": "?", "BF16": "<u2"}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items() if k != "BF16"}


def save(path, model, write=None):
    """Write ``model.state_dict()`` to ``path`` as safetensors (``write(path, bytes)`` does the writing; by
    default an atomic write)."""
    header, data, offset = {}, [], 0
    for k, a in model.state_dict().items():
        a = np.asarray(a, a.dtype.newbyteorder("="), order="C")  # (0-d stays 0-d)
        if a.dtype not in _NAMES:
            raise TypeError(f"state_dict[{k!r}] has dtype {a.dtype}, which safetensors cannot hold")
        header[k] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        data.append(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
        offset += a.nbytes
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data start 8-byte aligned
    parts = [struct.pack("<Q", len(head)), head, *data]
    if write is None:
        from .checkpoint import atomic_write_bytes as write
    write(Path(path), b"".join(parts))


def _index(path, f, size):
    """Name -> (dtype name, shape, begin, end) from the header, checked against the file's size."""
    raw = f.read(8)
    if len(raw) < 8:
        raise ValueError(f"safetensors file {path} is truncated ({size} bytes): not a safetensors file")
    n = struct.unpack("<Q", raw)[0]
    if n > min(_untrusted.MAX_HEADER_BYTES, size - 8):
        raise ValueError(f"safetensors file {path} declares a header of {n} bytes; the file has {size} and the "
                         f"limit is {_untrusted.MAX_HEADER_BYTES}")
    header = _untrusted.parse_json(f.read(n), path, "safetensors file")
    if not isinstance(header, dict):
        raise ValueError(f"safetensors file {path}: its header is not a JSON object")
    header.pop("__metadata__", None)
    data_bytes, index, spans = size - 8 - n, {}, []
    for name, e in header.items():
        if not isinstance(e, dict) or e.get("dtype") not in _DTYPES or not isinstance(e.get("data_offsets"), list):
            raise ValueError(f"safetensors file {path}: entry {name!r:.80} needs a dtype of {sorted(_DTYPES)}, a "
                             "shape and data_offsets")
        shape = _untrusted.check_shape(path, "safetensors file", f"entry {name!r}", e.get("shape"))
        off = e["data_offsets"]
        if len(off) != 2 or not all(isinstance(v, int) for v in off) or not 0 <= off[0] <= off[1] <= data_bytes:
            raise ValueError(f"safetensors file {path}: entry {name!r} has data_offsets {off!r:.80} outside the "
                             f"{data_bytes} bytes of data")
        need = _untrusted.n_elements(shape) * np.dtype(_DTYPES[e["dtype"]]).itemsize
        if off[1] - off[0] != need:
            raise ValueError(f"safetensors file {path}: entry {name!r} of {e['dtype']} {shape} needs {need} bytes, "
                             f"its data_offsets span {off[1] - off[0]}")
        index[name] = (e["dtype"], shape, off[0], off[1])
        spans.append((off[0], off[1]))
    end = 0
    for b, e in sorted(spans):
        if b != end:
            raise ValueError(f"safetensors file {path}: its entries overlap or leave a hole at byte {min(b, end)}")
        end = e
    if end != data_bytes:
        raise ValueError(f"safetensors file {path}: {data_bytes - end} bytes after the last entry")
    return index, 8 + n


def _decode(raw, dtype_name, shape):
    if dtype_name == "BF16":  # the top half of a float32
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return np.frombuffer(raw, _DTYPES[dtype_name]).reshape(shape).astype(np.dtype(_DTYPES[dtype_name]).newbyteorder("="))


def read(path, shapes=None):
    """Name -> numpy array of every entry. With ``shapes`` (name -> shape, what the caller needs), the names
    and shapes are checked against it from the header, before any data is read."""
    path = Path(path)
    with _untrusted.reading(path, "safetensors file"):
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                index, start = _index(path, f, size)
                if shapes is not None:
                    _check_names(path, index, shapes)
                out = {}
                for name, (dtype_name, shape, b, e) in index.items():
                    f.seek(start + b)
                    raw = f.read(e - b)
                    if len(raw) != e - b:
                        raise ValueError(f"safetensors file {path} is truncated inside entry {name!r}")
                    out[name] = _decode(raw, dtype_name, shape)
        except FileNotFoundError:
            raise FileNotFoundError(f"safetensors file {path} does not exist") from None
        except OSError as e:
            raise ValueError(f"safetensors file {path} cannot be read: {e}") from None
    return out


def _check_names(path, index, shapes):
    missing, unexpected = sorted(set(shapes) - set(index)), sorted(set(index) - set(shapes))
    if missing or unexpected:
        raise ValueError(f"safetensors file {path} does not fit the model: missing entries {missing[:5]}, "
                         f"unexpected entries {unexpected[:5]}")
    for name, shape in shapes.items():
        if index[name][1] != tuple(shape):
            raise ValueError(f"safetensors file {path}: entry {name!r} has shape {index[name][1]}, the model needs "
                             f"{tuple(shape)}")


def load_into(path, model):
    """Copy the weights of a safetensors file into ``model`` (names and shapes checked first)."""
    shapes = {k: tuple(a.shape) for k, a in model._arrays()}
    model.load_state_dict(read(path, shapes))
    return model
