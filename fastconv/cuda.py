"""The CUDA target: ``is_available()``, moving arrays, and the backend the functional ops use for device
arrays (anything with ``__cuda_array_interface__``: Numba device arrays, CuPy arrays, PyTorch CUDA tensors).

Without numba-cuda or a GPU everything here says so clearly, and the CPU target works unchanged. Under Numba's
simulator (``NUMBA_ENABLE_CUDASIM=1``) the same code runs on the CPU, for tests.
"""
import numpy as np

from ._checks import is_device_array, to_host


def _numba_cuda():
    try:
        from numba import cuda
    except ImportError:
        return None
    return cuda


def is_available():
    """True when numba-cuda is installed and a CUDA GPU (or the simulator) answers."""
    cuda = _numba_cuda()
    if cuda is None:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:
        return False


def describe():
    cuda = _numba_cuda()
    if cuda is None:
        return "not available (numba-cuda not installed: pip install 'fastconv[cuda]')"
    if not is_available():
        return "not available (no CUDA GPU found)"
    try:
        return f"available: {cuda.get_current_device().name}"
    except Exception as e:  # pragma: no cover - depends on the driver
        return f"available ({e})"


def require():
    if not is_available():
        raise RuntimeError(f"CUDA was asked for but is {describe()}")


def to_device(a):
    """A host array (or a device array, returned as it is) as a Numba device array."""
    require()
    from numba import cuda

    if is_device_array(a):
        return a
    return cuda.to_device(np.ascontiguousarray(a))


class CUDABackend:
    """Device arrays, kernels from fastconv.kernels.cuda."""

    name = "cuda"
    # below this many output channels, stride-1 forward passes skip packing
    direct_max_channels = 8
    phased_dx = False  # dX spreads the delta and runs the forward kernel over it

    def __init__(self):
        from .kernels import cuda as k
        from .kernels.cuda import memory

        self.k = k
        self._m = memory

    def empty(self, shape, dtype):
        from numba import cuda

        return cuda.device_array(shape, dtype)

    def zeros(self, shape, dtype):
        return self._m.zeros(shape, dtype)

    def contiguous(self, a):
        return self._m.contiguous(a)

    def pad(self, x, ph, pw):
        return self._m.pad(x, ph, pw)

    def weight_matrix(self, w, flip=False):
        return self._m.weight_matrix(self.contiguous(w), flip)

    def flipped(self, w):
        return self._m.flipped(self.contiguous(w))

    def use_direct_dw(self, xp, K):
        return True  # the CUDA dW kernel pairs only the real terms of the sum

    def use_phased_forward(self, C, K, sh, sw):
        return False  # (a CPU kernel: each CUDA thread reads its own taps, strided or not)

    def use_unfolded_forward(self, x_shape, w_shape, ph, pw, Q, itemsize):
        return False  # (a CPU kernel: the CUDA forward computes no junk columns)

    def asarray(self, a):
        return to_device(a)

    def mean(self, a):
        return float(np.mean(to_host(a)))

    def minmax(self, a):
        h = self.contiguous(a).copy_to_host()
        return int(h.min()), int(h.max())

    def flat(self, a):
        return a.reshape(a.size)

    def mul(self, a, b):
        return self._m.mul(self.contiguous(a), self.contiguous(b))

    def add_into(self, dst, src):
        return self._m.add_into(dst, self.contiguous(src))


_BACKEND = None


def backend():
    global _BACKEND
    require()
    if _BACKEND is None:
        _BACKEND = CUDABackend()
    return _BACKEND


def dropout_mask(module, x):
    """A Dropout mask drawn on the host from the module's generator, moved to the device."""
    keep = module._rng.random(tuple(x.shape)) >= module.p
    return to_device((keep / (1.0 - module.p)).astype(x.dtype))
