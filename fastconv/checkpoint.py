"""Checkpoints: one ``.npz`` file holding a JSON header (architecture, optimizer settings, training position)
and plain arrays (weights, optimizer state). Loading never unpickles anything.

Writes are atomic: the file is written under a temporary name in the same folder, flushed, fsynced and renamed
over the old one, so a crash mid-write leaves the previous checkpoint as it was.
"""
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import nn, optim

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
    _atomic_write(path, arrays)


def _atomic_write(path, arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
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


def _read(path):
    """All entries of the file as numpy arrays; ValueError for anything that is not an intact checkpoint."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            entries = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise ValueError(f"checkpoint {path} is damaged or not a fastconv checkpoint: {e}") from None
    if "header" not in entries:
        raise ValueError(f"checkpoint {path} has no header: not a fastconv checkpoint")
    try:
        header = json.loads(entries.pop("header").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint {path} has a damaged header: {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not a fastconv checkpoint (format {header.get('format')!r})")
    if header.get("version") != VERSION:
        raise ValueError(f"checkpoint {path} has version {header.get('version')}, this fastconv reads {VERSION}")
    return header, entries


def load(path, model=None):
    """Read a checkpoint. Builds the model from the stored architecture (or checks and fills ``model``),
    builds the optimizer over its parameters, and returns a :class:`Checkpoint`. Nothing is returned
    half-loaded: any mismatch raises before the caller sees the model."""
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
