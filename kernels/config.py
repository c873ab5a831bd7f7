"""The one place for Numba flags used by every kernel."""
import os

# Float reassociation and contraction let LLVM vectorise reductions and emit FMAs. 'nnan' and 'ninf' are left
# out on purpose: NaN and Inf must propagate through every op as the maths says.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

# On-disk cache of compiled kernels, so a second process does not recompile.
CACHE = os.environ.get("FASTCONV_NO_CACHE", "") == ""

# CUDA launch shape: threads per block for 1-D grids and the side of a 2-D tile (tests patch them small).
THREADS_PER_BLOCK = 128
TILE = 16

# Default thread count for the CPU target: None means Numba's default (all cores).
DEFAULT_THREADS = None

CPU_JIT = dict(nogil=True, cache=CACHE, fastmath=set(FASTMATH))
CPU_PARALLEL_JIT = dict(CPU_JIT, parallel=True)

# Threading layer. Numba's default 'workqueue' layer aborts when two Python threads run parallel kernels at
# once; OpenMP (shipped with Numba's wheels) is safe for that. A user's NUMBA_THREADING_LAYER still wins.
THREADING_LAYER = os.environ.get("NUMBA_THREADING_LAYER", "omp")


def apply_threading_layer():
    """Set Numba's threading layer before any parallel kernel runs."""
    import numba

    numba.config.THREADING_LAYER = THREADING_LAYER
