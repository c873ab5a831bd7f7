"""Parameter initialisation like PyTorch's defaults, drawn from a seedable numpy Generator.

``manual_seed(s)`` reseeds the generator that layers use when they are not given one, so a model built after
it is the same in every run.
"""
import math

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed):
    """Reseed the default generator used by layers built without an explicit ``rng``."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def generator(rng=None):
    """``rng`` as a Generator: None means the default one, an int seeds a new one."""
    if rng is None:
        return _rng
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def uniform_fan_in(rng, shape, fan_in, dtype):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Conv2d and Linear weights
    (kaiming_uniform with a = sqrt(5)) and for their biases."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
