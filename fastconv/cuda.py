"""The CUDA target: ``is_available()``, moving arrays, and the backend the functional ops use for device
arrays (anything with ``__cuda_array_interface__``: Numba device arrays, CuPy arrays, PyTorch CUDA tensors).

Without numba-cuda or a GPU everything here says so clearly, and the CPU target works unchanged. Under Numba's
simulator (``NUMBA_ENABLE_CUDASIM=1``) the same code runs on the CPU, for tests.
"""
import numpy as np

from ._checks import is_device_array


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


def simulated():
    """True under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)."""
    import numba

    return bool(getattr(numba.config, "ENABLE_CUDASIM", 0))


def synchronize():
    """Wait for the GPU's queued work (nothing to wait for under the simulator)."""
    if not simulated():
        from numba import cuda

        cuda.synchronize()


def require():
    if not simulated() and _numba_cuda() is not None:
        from .kernels.cuda import allocator

        allocator.install()  # (before the first CUDA context)
    if not is_available():
        raise RuntimeError(f"CUDA was asked for but is {describe()}")


def to_device(a):
    """A host array (or a device array, returned as it is) as a Numba device array."""
    require()
    from .kernels.cuda import memory

    if is_device_array(a):
        return memory.as_device(a)
    return memory.to_device(a)


def backend():
    """The CUDA target's plan module (``fastconv.kernels.cuda.plan``); a clear error without a GPU."""
    require()
    from .kernels.cuda import plan

    return plan


def dropout_mask(module, x):
    """A Dropout mask drawn on the host from the module's generator, moved to the device."""
    keep = module._rng.random(tuple(x.shape)) >= module.p
    return to_device((keep / (1.0 - module.p)).astype(x.dtype))


class EpochTally:
    """An epoch's training losses and hits kept on the GPU: the labels of the epoch's order go to the device
    once, each batch's softmax cross-entropy and argmax hits are written into per-sample device buffers, and
    the host reads them only when asked (``read``: a loss check every few batches, the epoch's figures)."""

    def __init__(self, labels_in_order):
        from .kernels.cuda import memory

        self._memory = memory
        labels = np.asarray(labels_in_order, np.int64)
        n = len(labels)
        self._range = (int(labels.min()), int(labels.max())) if n else (0, 0)
        self.labels = memory.to_device(labels)
        self.losses = memory.device_array((n,), np.float64)
        self.hits = memory.device_array((n,), np.int64)

    def batch(self, logits, start):
        """The gradient of the mean loss of rows start .. start + len(logits) of the epoch, with respect to the
        logits; their losses and hits are recorded."""
        from .kernels.cuda import loss

        N, C = logits.shape
        if self._range[0] < 0 or self._range[1] >= C:  # (checked on the host: the kernel would read out of bounds)
            raise ValueError(f"labels must lie in [0, {C}) for {C} classes, got values in [{self._range[0]}, "
                             f"{self._range[1]}]")
        if not 0 <= start <= start + N <= self.labels.shape[0]:
            raise ValueError(f"rows {start} .. {start + N} lie outside the epoch's {self.labels.shape[0]} labels")
        labels = self.labels[start : start + N]
        grad = self._memory.device_array((N, C), logits.dtype)
        loss.softmax_cross_entropy(logits, labels, grad, self.losses[start : start + N])
        loss.hits(logits, labels, self.hits[start : start + N])
        return grad

    def read(self, stop):
        """(sum of the losses, number of hits) of rows 0 .. stop - 1, from one copy each."""
        if stop == 0:
            return 0.0, 0
        return float(np.sum(self.losses[:stop].copy_to_host())), int(np.sum(self.hits[:stop].copy_to_host()))
