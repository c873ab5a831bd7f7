"""Thread count of the CPU target (Numba's parallel loops)."""
import numba

from . import kernels  # noqa: F401  (sets the threading layer before any parallel kernel runs)


def set_num_threads(n):
    """Use ``n`` threads (1 .. the number Numba started with) for the CPU kernels."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {n!r}")
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n must be in [1, {numba.config.NUMBA_NUM_THREADS}], got {n}")
    numba.set_num_threads(n)


def get_num_threads():
    """The thread count the CPU kernels use now."""
    return numba.get_num_threads()
