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
