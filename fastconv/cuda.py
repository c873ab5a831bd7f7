"""The CUDA target's entry points. Without numba-cuda or a GPU, everything here says so clearly and the CPU
target works unchanged."""


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


def backend():
    require()
    raise NotImplementedError("the CUDA kernels are not written yet (see the CUDA issue); use the CPU target")


def to_device(a):
    require()
    raise NotImplementedError("the CUDA kernels are not written yet (see the CUDA issue); use the CPU target")


def dropout_forward(module, x):
    return backend()
