"""Launch helpers shared by the CUDA kernels, and the registry of their signatures for PTX checks.

The kernels decode their flat thread index into (n, c, h, w) inline rather than through a device function:
under Numba's CUDA simulator, where CI runs them, every device-function call costs as much as a whole
thread, and a shared helper made the simulated LeNet-5 step take over ten minutes instead of seconds."""
from numba import cuda

from .. import config

# name -> (python function, signature template with T for the float type); compiled to PTX by the tests
SIGNATURES = {}


def kernel(signature):
    """``@cuda.jit`` (lazily specialised at launch), remembering a signature template for PTX compilation.

    ``T`` in the template stands for float32 or float64, e.g. ``"T[:,:,:,:], T[:], i8, b1"``.
    """

    def wrap(fn):
        SIGNATURES[fn.__name__] = (fn, signature)
        return cuda.jit(fn)

    return wrap


def kernel_arg(a):
    """What a kernel receives for argument ``a``: ``a`` itself (the tests' strict stand-in for device arrays
    swaps this for its unwrapping)."""
    return a


def launch(k, n, *args):
    """Run kernel ``k`` over ``n`` work items in 1-D blocks of config.THREADS_PER_BLOCK, at most
    config.MAX_BLOCKS blocks; kernels walk their items with grid-stride loops (nothing runs when n is 0)."""
    if n > 0:
        tpb = config.THREADS_PER_BLOCK
        k[min((n + tpb - 1) // tpb, config.MAX_BLOCKS), tpb](*[kernel_arg(a) for a in args])
