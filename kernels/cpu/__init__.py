"""Parallel CPU kernels (Numba ``parallel=True`` with ``prange``). ``plan`` holds the op-level entry points
that ``fastconv.functional`` calls; the other modules hold the kernels, one family each."""
from .. import config as _config

_config.apply_threading_layer()
WIDE_VECTORS = _config.apply_vector_width()
