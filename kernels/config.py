"""The one place for Numba flags used by every kernel."""
import os

# Float reassociation and contraction let LLVM vectorise reductions and emit FMAs. 'nnan' and 'ninf' are left
# out on purpose: NaN and Inf must propagate through every op as the maths says.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

# On-disk cache of compiled kernels, so a second process does not recompile.
CACHE = os.environ.get("FASTCONV_NO_CACHE", "") == ""

# CUDA launch shape: threads per block for 1-D grids. Tests set it small (through the environment, before the
# kernels compile) so tiny inputs still span several blocks.
THREADS_PER_BLOCK = int(os.environ.get("FASTCONV_CUDA_TPB", 128))
# 1-D kernels use grid-stride loops over at most this many blocks (the simulator runs each thread in Python)
MAX_BLOCKS = int(os.environ.get("FASTCONV_CUDA_MAX_BLOCKS", 65535))
# The tiled products (convolutions as implicit GEMMs, dense layers): a block computes a TM x TN tile of the
# output, reducing TK terms at a time through shared memory, each thread an RM x RN register block of it
# (TM/RM x TN/RN threads). Compiled into the kernels; the tests make them small (16,16,16,4,4) for the simulator.
CUDA_TILE = tuple(int(v) for v in os.environ.get("FASTCONV_CUDA_TILE", "64,64,16,4,4").split(","))

# Default thread count for the CPU target: None means Numba's default (all cores).
DEFAULT_THREADS = None



# What ``parallel`` kernels run in parallel: their prange loops, and nothing else. By default Numba also turns
# array allocations (np.zeros), slice assignments and array expressions into parallel loops, and each such
# loop is a fork and join of the thread pool, about 2 us: several per call of a conv kernel, 4 us of the 7 us
# that LeNet C2's unfolded forward then spent outside its product on one image.
# (Each kernel gets a copy: Numba pops the keys it reads.)
PRANGE_ONLY = dict(prange=True, comprehension=False, reduction=False, inplace_binop=False, setitem=False,
                   numpy=False, stencil=False, fusion=False)


def cpu_kernel(fn=None, *, parallel=True, inline=False):
    """Compile ``fn`` for the CPU with fastconv's flags (nogil, FASTMATH, on-disk cache, ``parallel`` for
    prange kernels, ``inline`` for micro-kernels). Where no cache directory is writable (a read-only install
    with an unwritable home), Numba refuses ``cache=True``: the kernel is then compiled without the on-disk
    cache, with one warning, instead of failing the import."""

    def wrap(f):
        import numba

        opts = dict(nogil=True, fastmath=set(FASTMATH), parallel=dict(PRANGE_ONLY) if parallel else False, cache=CACHE)
        if inline:
            opts["inline"] = "always"
        try:
            return numba.njit(**opts)(f)
        except RuntimeError as e:
            if "cannot cache" not in str(e):
                raise
            _warn_no_cache(e)
            opts["cache"] = False
            return numba.njit(**opts)(f)

    return wrap(fn) if fn is not None else wrap


_warned = []


def _warn_no_cache(err):
    if not _warned:
        import warnings

        _warned.append(err)
        warnings.warn(f"fastconv: no writable Numba cache directory ({err}); kernels are compiled in every "
                      "process. Set NUMBA_CACHE_DIR to a writable folder to keep them.", RuntimeWarning, stacklevel=3)

# Threading layer. Numba's default 'workqueue' layer aborts when two Python threads run parallel kernels at
# once; OpenMP (shipped with Numba's wheels) is safe for that. A user's NUMBA_THREADING_LAYER still wins.
THREADING_LAYER = os.environ.get("NUMBA_THREADING_LAYER", "omp")


def apply_threading_layer():
    """Set Numba's threading layer before any parallel kernel runs."""
    import numba

    numba.config.THREADING_LAYER = THREADING_LAYER


# Vector width. The AVX-512 register blocks (``cpu/blocks.py``: 8 x 32, two 16-lane vectors per row) need LLVM
# to use 512-bit vectors, but for Intel's AVX-512 CPUs (Skylake-SP to Sapphire Rapids) LLVM prefers 256-bit
# ones (its 'prefer-256-bit' tuning), which halves every product there: on a 2-core Xeon (LLVM's name
# 'rocketlake') a 32 -> 64 channel 3x3 forward on 28x28 ran at 122 GFLOP/s with LLVM's default and 238 with
# it turned off. AMD's Zen 4 and Zen 5 have no such preference; there the setting changes nothing.
NO_256_BIT_PREFERENCE = "-prefer-256-bit"


def apply_vector_width():
    """Have Numba compile for this CPU's features without LLVM's 256-bit preference, on CPUs with AVX-512 and
    where the user has chosen neither NUMBA_CPU_NAME nor NUMBA_CPU_FEATURES. Numba reads its target features
    once, when its CPU code generator is made; that is done here, so that the setting holds for every kernel
    (and, Numba's target being one per process, for other Numba code compiled in this process). Returns
    whether the code generator ends up without the preference; warns where it was made earlier without it."""
    import numba
    from llvmlite import binding as llvm
    from numba.core.registry import cpu_target

    if numba.config.CPU_NAME or numba.config.CPU_FEATURES is not None:
        return NO_256_BIT_PREFERENCE in (numba.config.CPU_FEATURES or "")
    host = llvm.get_host_cpu_features().flatten()
    if "+avx512f" not in host.split(","):
        return False
    made = "_toplevel_target_context" in vars(cpu_target)
    if not made:
        numba.config.CPU_FEATURES = f"{host},{NO_256_BIT_PREFERENCE}"
    features = cpu_target.target_context.codegen()._tm_features  # makes the code generator if not yet made
    ok = NO_256_BIT_PREFERENCE in features
    if not ok and not llvm.get_host_cpu_name().startswith("znver"):
        import warnings

        warnings.warn("fastconv: Numba compiled code before fastconv was imported, for this CPU's default "
                      "vector width; where LLVM prefers 256-bit vectors (Intel's AVX-512 CPUs) fastconv's kernels "
                      "run at about half speed. Import fastconv first, or set NUMBA_CPU_FEATURES.",
                      RuntimeWarning, stacklevel=2)
    return ok
