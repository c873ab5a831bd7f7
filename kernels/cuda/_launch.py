"""Launch helpers shared by the CUDA kernels, and the registry of their signatures for PTX checks.

The kernels decode their flat thread index into (n, c, h, w) inline rather than through a device function:
under Numba's CUDA simulator, where CI runs them, every device-function call costs as much as a whole
thread, and a shared helper made the simulated LeNet-5 step take over ten minutes instead of seconds."""
import os

from numba import cuda

from .. import config

# Compiled kernels go to Numba's on-disk cache (one compile per machine), except under the simulator and when
# the launch shape is set through the environment: the tile and block sizes are compiled into the kernels,
# and the cache's key does not see them.
CACHE = config.CACHE and not any(os.environ.get(v) for v in ("FASTCONV_CUDA_TILE", "FASTCONV_CUDA_TPB", "NUMBA_ENABLE_CUDASIM"))

# name -> (python function, signature template with T for the float type); compiled to PTX by the tests
SIGNATURES = {}


def kernel(signature):
    """``@cuda.jit`` (lazily specialised at launch), remembering a signature template for PTX compilation.

    ``T`` in the template stands for float32 or float64, e.g. ``"T[:,:,:,:], T[:], i8, b1"``.
    """

    def wrap(fn):
        SIGNATURES[fn.__name__] = (fn, signature)
        if CACHE:
            try:
                return cuda.jit(fn, cache=True)
            except RuntimeError as e:  # no writable cache directory: compile in every process
                if "cannot cache" not in str(e):
                    raise
        return cuda.jit(fn)

    return wrap


def kernel_arg(a):
    """What a kernel receives for argument ``a``: ``a`` itself (the tests' strict stand-in for device arrays
    swaps this for its unwrapping)."""
    return a


def launch_grid(k, blocks, threads, *args):
    """Run kernel ``k`` on a grid of ``blocks`` (x, y, z) blocks of ``threads`` threads (an int or (x, y)),
    each count capped at config.MAX_BLOCKS and the hardware's limits; kernels walk their blocks with
    grid-stride loops in every dimension (nothing runs when a count is 0)."""
    if min(blocks) > 0:
        caps = (config.MAX_BLOCKS, min(config.MAX_BLOCKS, 65535), min(config.MAX_BLOCKS, 65535))
        k[tuple(min(b, c) for b, c in zip(blocks, caps)), threads](*[kernel_arg(a) for a in args])


def launch(k, n, *args):
    """Run kernel ``k`` over ``n`` work items in 1-D blocks of config.THREADS_PER_BLOCK, at most
    config.MAX_BLOCKS blocks; kernels walk their items with grid-stride loops (nothing runs when n is 0)."""
    if n > 0:
        tpb = config.THREADS_PER_BLOCK
        k[min((n + tpb - 1) // tpb, config.MAX_BLOCKS), tpb](*[kernel_arg(a) for a in args])
