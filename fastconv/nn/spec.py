"""A network's architecture as plain JSON-able data, and back: what a checkpoint stores instead of pickles."""
from . import layers
from .containers import Sequential

LAYERS = {cls.__name__: cls for cls in (layers.Conv2D, layers.Linear, layers.MaxPool2D, layers.AvgPool2D,
                                        layers.ReLU, layers.Tanh, layers.Sigmoid, layers.Flatten, layers.Dropout)}


def spec(module):
    """{"type": name, "args": {...}} for a layer; Sequential lists its children."""
    if isinstance(module, Sequential):
        return {"type": "Sequential", "children": [spec(m) for m in module]}
    name = type(module).__name__
    if LAYERS.get(name) is not type(module):
        raise TypeError(f"module of type {name} has no architecture spec (only built-in layers and Sequential)")
    args = module.config() if hasattr(module, "config") else {}
    return {"type": name, "args": {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}}


def build(s):
    """The module an architecture spec describes (fresh parameters); ValueError on anything unknown."""
    if not isinstance(s, dict) or "type" not in s:
        raise ValueError(f"architecture spec must be a dict with a 'type', got {s!r:.80}")
    if s["type"] == "Sequential":
        children = s.get("children")
        if not isinstance(children, list):
            raise ValueError("architecture spec of a Sequential needs a list of 'children'")
        return Sequential(*[build(c) for c in children])
    cls = LAYERS.get(s["type"])
    if cls is None:
        raise ValueError(f"unknown layer type {s['type']!r} in architecture spec; known: {sorted(LAYERS)}")
    args = s.get("args", {})
    if not isinstance(args, dict):
        raise ValueError(f"'args' of {s['type']} must be a dict, got {args!r:.80}")
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})
    except TypeError as e:
        raise ValueError(f"bad arguments for {s['type']} in architecture spec: {e}") from None
