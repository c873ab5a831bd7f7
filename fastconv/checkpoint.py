"""Checkpoints: one ``.npz`` file holding a JSON header (architecture, optimizer settings, training position)
and plain arrays (weights, optimizer state). Loading never unpickles anything, and checks every stored
array's declared size against the zip's and the architecture's before it reads or builds anything.

Writes are atomic: the file is written under a temporary name in the same folder, flushed, fsynced and renamed
over the old one, so a crash mid-write leaves the previous checkpoint as it was.
"""
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _untrusted, nn, optim, safetensors_format

FORMAT = "fastconv-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """What :func:`load` returns: a built model with its weights, its optimizer (or None) and the position."""

    model: nn.Module
    optimizer: object = None
    position: dict = field(default_factory=dict)


def save(path, model, optimizer=None, position=None):
    """Write model, optimizer state and the training position (JSON-able dict) to ``path`` atomically."""
    path = Path(path)
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "version": VERSION, "arch": nn.spec(model), "position": position or {}}
    if optimizer is not None:
        sd = optimizer.state_dict()
        kind = {cls: name for name, cls in optim.OPTIMIZERS.items()}[type(optimizer)]
        scalars = []
        for i, s in enumerate(sd["state"]):
            scalars.append({k: v for k, v in s.items() if not hasattr(v, "shape")})
            arrays.update({f"optim/{i}/{k}": v for k, v in s.items() if hasattr(v, "shape")})
        header["optimizer"] = {"type": kind, "hyper": sd["hyper"], "scalars": scalars}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    _atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (see the module's docstring)."""
    _atomic_write(Path(path), lambda f: f.write(data))


def _atomic_write(path, write):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _open_zip(path):
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ValueError(f"checkpoint {path} is damaged or not a fastconv checkpoint: {e}") from None


def _member_headers(path, zf):
    """Entry name -> (shape, dtype, info) from each stored array's .npy header, before any data is read: the
    declared sizes are checked against the zip's own (and, by the caller, against the architecture)."""
    out = {}
    stored = expanded = 0
    for info in zf.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"checkpoint {path}: entry {name} has .npy format {version}, reads 1.0 and 2.0")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
            offset = f.tell()
        if dtype.hasobject or dtype.kind not in "biuf":
            raise ValueError(f"checkpoint {path} is not a fastconv checkpoint: entry {name} has dtype {dtype} "
                             "(only plain numbers are read)")
        shape = _untrusted.check_shape(path, "checkpoint", f"entry {name}", shape)
        need = offset + _untrusted.n_elements(shape) * dtype.itemsize
        if info.file_size != need:
            raise ValueError(f"checkpoint {path}: entry {name} declares shape {shape} ({need} bytes with its "
                             f"header) but its zip member holds {info.file_size} bytes")
        stored, expanded = stored + info.compress_size, expanded + info.file_size
        out[name] = (shape, dtype, info)
    _untrusted.check_expansion(path, "checkpoint", "its members", expanded, stored)
    return out


def _read_member(zf, info):
    with zf.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _read_header(path, zf, members):
    if "header" not in members:
        raise ValueError(f"checkpoint {path} has no header: not a fastconv checkpoint")
    shape, dtype, info = members.pop("header")
    if dtype != np.uint8 or len(shape) != 1:
        raise ValueError(f"checkpoint {path} has a damaged header ({dtype} {shape})")
    if shape[0] > _untrusted.MAX_HEADER_BYTES:
        raise ValueError(f"checkpoint {path}: its header is {shape[0]} bytes, the limit is "
                         f"{_untrusted.MAX_HEADER_BYTES}")
    header = _untrusted.parse_json(_read_member(zf, info).tobytes(), path, "checkpoint")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise ValueError(f"checkpoint {path} is not a fastconv checkpoint (format {fmt!r})")
    if header.get("version") != VERSION:
        raise ValueError(f"checkpoint {path} has version {header.get('version')}, this fastconv reads {VERSION}")
    return header


def _check_against_arch(path, members, header):
    """Every stored array must be one the architecture needs, with the shape it needs."""
    try:
        need = nn.spec_state_shapes(header["arch"])
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"checkpoint {path} has a bad architecture: {e}") from None
    params = [shape for shape, is_buffer in need.values() if not is_buffer]
    stored = {k[len("model/"):]: v[0] for k, v in members.items() if k.startswith("model/")}
    missing, unexpected = sorted(set(need) - set(stored)), sorted(set(stored) - set(need))
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit its architecture: missing entries {missing[:5]}, "
                         f"unexpected entries {unexpected[:5]}")
    for key, (shape, _) in need.items():
        if stored[key] != tuple(shape):
            raise ValueError(f"checkpoint {path}: entry model/{key} is stored with shape {stored[key]}, the "
                             f"architecture needs {tuple(shape)}")
    for k, (shape, _, _) in members.items():
        if k.startswith("optim/"):
            i = k.split("/")[1]
            if not i.isdigit() or int(i) >= len(params) or shape not in ((), tuple(params[int(i)])):
                raise ValueError(f"checkpoint {path}: optimizer entry {k} with shape {shape} matches no "
                                 "parameter of the architecture")
        elif not k.startswith("model/"):
            raise ValueError(f"checkpoint {path}: unexpected entry {k}")


def _read(path):
    """(header, entries): the JSON header and every stored array, each checked against the zip's sizes and
    the architecture's needs before it is read; ValueError for anything that is not an intact checkpoint."""
    with _untrusted.reading(path, "checkpoint"):
        with _open_zip(path) as zf:
            try:
                members = _member_headers(path, zf)
                header = _read_header(path, zf, members)
                _check_against_arch(path, members, header)
                entries = {k: _read_member(zf, info) for k, (_, _, info) in members.items()}
            except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
                raise ValueError(f"checkpoint {path} is damaged or not a fastconv checkpoint: {e}") from None
            except ValueError as e:
                if str(path) in str(e):
                    raise
                raise ValueError(f"checkpoint {path} is damaged or not a fastconv checkpoint: {e}") from None
    return header, entries


def load(path, model=None):
    """Read a checkpoint. Builds the model from the stored architecture (or checks and fills ``model``),
    builds the optimizer over its parameters, and returns a :class:`Checkpoint`. Nothing is returned
    half-loaded: any mismatch raises before the caller sees the model.

    A ``.safetensors`` file holds weights only: they are loaded into ``model``, which must then be given
    (names and shapes are checked from the file's header before its data are read)."""
    if Path(path).suffix == ".safetensors":
        if model is None:
            raise ValueError(f"{path} is a safetensors file: it holds weights but no architecture, so pass the "
                             "model to load them into (load(path, model=...))")
        try:
            return Checkpoint(safetensors_format.load_into(path, model))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{e}" if str(path) in str(e) else f"safetensors file {path} does not fit: {e}") from None
    header, entries = _read(path)
    try:
        built = nn.build(header["arch"])
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"checkpoint {path} has a bad architecture: {e}") from None
    state = {k[len("model/"):]: v for k, v in entries.items() if k.startswith("model/")}
    try:
        built.load_state_dict(state)
        if model is not None:
            if nn.spec(model) != nn.spec(built):
                raise ValueError("the given model's architecture differs from the checkpoint's")
            model.load_state_dict(state)
            built = model
    except (ValueError, TypeError) as e:
        raise ValueError(f"checkpoint {path} does not fit: {e}") from None
    opt = None
    if "optimizer" in header:
        o = header["optimizer"]
        try:
            opt = optim.OPTIMIZERS[o["type"]](built.parameters(), lr=o["hyper"]["lr"])
            arrays = [{} for _ in opt.params]
            for k, v in entries.items():
                if k.startswith("optim/"):
                    _, i, name = k.split("/", 2)
                    arrays[int(i)][name] = v
            state = [dict(s, **a) for s, a in zip(o["scalars"], arrays)]
            opt.load_state_dict({"hyper": o["hyper"], "state": state})
        except (KeyError, ValueError, TypeError, IndexError) as e:
            raise ValueError(f"checkpoint {path} has a damaged optimizer state: {e}") from None
    return Checkpoint(built, opt, header.get("position", {}))
