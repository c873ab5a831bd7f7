"""A network's architecture as plain JSON-able data, and back: what a checkpoint stores instead of pickles."""
from . import layers, norm
from .containers import Residual, Sequential

LAYERS = {cls.__name__: cls for cls in (layers.Conv2D, layers.Linear, layers.MaxPool2D, layers.AvgPool2D,
                                        layers.ReLU, layers.Tanh, layers.Sigmoid, layers.Flatten, layers.Dropout,
                                        norm.BatchNorm2D, norm.GlobalAvgPool2D)}
MAX_DEPTH = 32  # containers nested deeper than this are refused (a ResNet needs 4)


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(e) for e in v]
    return v


def _from_json(v):
    if isinstance(v, list):
        return tuple(_from_json(e) for e in v)
    return v


def spec(module):
    """{"type": name, "args": {...}} for a layer; Sequential lists its children, Residual names its body and
    shortcut (None without one)."""
    if isinstance(module, Sequential):
        return {"type": "Sequential", "children": [spec(m) for m in module]}
    if isinstance(module, Residual):
        return {"type": "Residual", "body": spec(module.body),
                "shortcut": None if module.shortcut is None else spec(module.shortcut)}
    name = type(module).__name__
    if LAYERS.get(name) is not type(module):
        raise TypeError(f"module of type {name} has no architecture spec (only built-in layers, Sequential and "
                        "Residual)")
    args = module.config() if hasattr(module, "config") else {}
    return {"type": name, "args": {k: _jsonable(v) for k, v in args.items()}}


def build(s, _depth=0):
    """The module an architecture spec describes (fresh parameters); ValueError on anything unknown or nested
    deeper than MAX_DEPTH."""
    if _depth > MAX_DEPTH:
        raise ValueError(f"architecture spec nests containers deeper than {MAX_DEPTH} levels")
    if not isinstance(s, dict) or "type" not in s:
        raise ValueError(f"architecture spec must be a dict with a 'type', got {s!r:.80}")
    if s["type"] == "Sequential":
        children = s.get("children")
        if not isinstance(children, list):
            raise ValueError("architecture spec of a Sequential needs a list of 'children'")
        return Sequential(*[build(c, _depth + 1) for c in children])
    if s["type"] == "Residual":
        if "body" not in s:
            raise ValueError("architecture spec of a Residual needs a 'body'")
        shortcut = s.get("shortcut")
        return Residual(build(s["body"], _depth + 1), None if shortcut is None else build(shortcut, _depth + 1))
    cls = LAYERS.get(s["type"])
    if cls is None:
        raise ValueError(f"unknown layer type {s['type']!r} in architecture spec; known: "
                         f"{sorted([*LAYERS, 'Residual', 'Sequential'])}")
    args = s.get("args", {})
    if not isinstance(args, dict):
        raise ValueError(f"'args' of {s['type']} must be a dict, got {args!r:.80}")
    try:
        return cls(**{k: _from_json(v) for k, v in args.items()})
    except TypeError as e:
        raise ValueError(f"bad arguments for {s['type']} in architecture spec: {e}") from None


def _positive(s, key, default=None):
    v = s.get("args", {}).get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{s['type']} in architecture spec needs a positive int {key!r}, got {v!r:.40}")
    return v


def _layer_state(s):
    """(name, shape, is_buffer) of a layer spec's parameters and buffers, from its arguments alone."""
    t, args = s["type"], s.get("args", {})
    if not isinstance(args, dict):
        raise ValueError(f"'args' of {t} must be a dict, got {args!r:.80}")
    if t == "Conv2D":
        c, k, g = _positive(s, "in_channels"), _positive(s, "out_channels"), _positive(s, "groups", 1)
        ks = args.get("kernel_size")
        kh, kw = (ks, ks) if isinstance(ks, int) else tuple(ks) if isinstance(ks, (list, tuple)) else (0, 0)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (kh, kw)):
            raise ValueError(f"Conv2D in architecture spec needs a positive kernel_size, got {ks!r:.40}")
        out = [("weight", (k, c // g, kh, kw), False)]
        return out + ([("bias", (k,), False)] if args.get("bias", True) else [])
    if t == "Linear":
        i, o = _positive(s, "in_features"), _positive(s, "out_features")
        return [("weight", (o, i), False)] + ([("bias", (o,), False)] if args.get("bias", True) else [])
    if t == "BatchNorm2D":
        c = _positive(s, "num_features")
        return [("weight", (c,), False), ("bias", (c,), False), ("running_mean", (c,), True),
                ("running_var", (c,), True), ("num_batches_tracked", (), True)]
    if t not in LAYERS:
        raise ValueError(f"unknown layer type {t!r} in architecture spec")
    return []


def state_shapes(s, prefix="", _depth=0):
    """Key -> (shape, is_buffer) of the state dict that ``build(s)`` would have, in its order, computed from
    the spec without allocating anything: what a loader checks a file's stored shapes against."""
    if _depth > MAX_DEPTH:
        raise ValueError(f"architecture spec nests containers deeper than {MAX_DEPTH} levels")
    if not isinstance(s, dict) or "type" not in s:
        raise ValueError(f"architecture spec must be a dict with a 'type', got {s!r:.80}")
    out = {}
    if s["type"] == "Sequential":
        children = s.get("children")
        if not isinstance(children, list):
            raise ValueError("architecture spec of a Sequential needs a list of 'children'")
        for i, c in enumerate(children):
            out.update(state_shapes(c, f"{prefix}{i}.", _depth + 1))
    elif s["type"] == "Residual":
        out.update(state_shapes(s.get("body"), f"{prefix}body.", _depth + 1))
        if s.get("shortcut") is not None:
            out.update(state_shapes(s["shortcut"], f"{prefix}shortcut.", _depth + 1))
    else:
        for name, shape, is_buffer in _layer_state(s):
            out[prefix + name] = (shape, is_buffer)
    return out
