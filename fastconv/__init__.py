"""fastconv: a small CNN engine whose kernels are hand-written Numba loops, for parallel CPUs and NVIDIA GPUs.

The functional ops (``conv2d``, ``max_pool2d``, ...) take NCHW numpy arrays (or CUDA arrays) of float32 or
float64; layers live in :mod:`fastconv.nn`, optimizers in :mod:`fastconv.optim`, models in
:mod:`fastconv.models`.
"""
__version__ = "0.1.0"

from . import functional  # noqa: E402
from .functional import *  # noqa: E402,F401,F403
from .memory import reuse_freed_memory  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402

__all__ = [*functional.__all__, "get_num_threads", "set_num_threads", "reuse_freed_memory"]
