"""Array helpers of the CUDA target: where device arrays come from, zero-filled arrays, contiguous copies,
elementwise product and sums.

Every device array the target makes comes from ``device_array``, ``to_device`` or ``as_device``, and uses only
what numba-cuda's ``DeviceNDArray`` offers (no numpy attributes such as ``itemsize``, no ``.T``, which launches
a transpose kernel and copies). The tests swap these three for a strict stand-in with exactly that API.
"""
import numpy as np
from numba import cuda

from ._launch import kernel, launch


def device_array(shape, dtype):
    """An uninitialised device array."""
    return cuda.device_array(shape, dtype)


def to_device(host):
    """A host array's copy on the device."""
    return cuda.to_device(np.ascontiguousarray(host))


def as_device(obj):
    """A Numba device array viewing anything with ``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA
    tensors): no copy; numba-cuda synchronises once on the stream the producer names in the interface, so
    its pending work is finished before fastconv's kernels (on the default stream) read it. (Numba's
    simulator has no ``as_cuda_array``; there 'device' memory is host memory, and the interface's buffer is
    copied into a simulated device array.)"""
    if hasattr(obj, "copy_to_host"):
        return obj
    if _SIMULATOR:
        return cuda.to_device(np.array(_host_view(obj.__cuda_array_interface__)))
    return cuda.as_cuda_array(obj)


def _host_view(cai):
    """The numpy array a ``__cuda_array_interface__`` describes, when its pointer is a host address (the
    simulator's)."""
    import ctypes

    shape, dtype = tuple(cai["shape"]), np.dtype(cai["typestr"])
    strides = cai.get("strides") or tuple(int(dtype.itemsize * np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))
    extent = sum((n - 1) * st for n, st in zip(shape, strides)) + dtype.itemsize if all(shape) else 0
    buf = np.frombuffer((ctypes.c_char * extent).from_address(cai["data"][0]), np.uint8) if extent else np.zeros(0, np.uint8)
    return np.lib.stride_tricks.as_strided(buf.view(dtype) if extent else np.zeros(0, dtype), shape, strides)


_SIMULATOR = bool(getattr(__import__("numba").config, "ENABLE_CUDASIM", 0))


@kernel("T[:]")
def _fill_zero(a):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):  # grid-stride loop
        a[i] = 0


def zeros(shape, dtype):
    a = device_array(shape, dtype)
    launch(_fill_zero, a.size, a.reshape(a.size))
    return a


_zero_vectors = {}


def zero_vector(n, dtype):
    """A read-only vector of n zeros (a bias for products that have none), made once per size and type."""
    key = (int(n), np.dtype(dtype).str)
    if key not in _zero_vectors:
        _zero_vectors[key] = zeros((n,), dtype)
    return _zero_vectors[key]


@kernel("T[:], T[:], T[:]")
def _mul(a, b, out):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):  # grid-stride loop
        out[i] = a[i] * b[i]


def mul(a, b):
    out = device_array(a.shape, a.dtype)
    launch(_mul, a.size, a.reshape(a.size), b.reshape(b.size), out.reshape(out.size))
    return out


@kernel("T[:], T[:]")
def _add_into(dst, src):
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):  # grid-stride loop
        dst[i] += src[i]


def add_into(dst, src):
    launch(_add_into, dst.size, dst.reshape(dst.size), src.reshape(src.size))
    return dst


@kernel("T[:,:,:,:], T[:,:,:,:]")
def _copy4(src, dst):
    N, C, H, W = dst.shape
    for i in range(cuda.grid(1), N * C * H * W, cuda.gridsize(1)):  # grid-stride loop
        w = i % W
        h = (i // W) % H
        c = (i // (H * W)) % C
        n = i // (C * H * W)
        dst[n, c, h, w] = src[n, c, h, w]


def contiguous(a):
    """A C-contiguous Numba device array for anything with __cuda_array_interface__: the array itself when
    it is contiguous, else a copy (on the device for 4-D views, through the host otherwise)."""
    d = as_device(a)
    if d.is_c_contiguous():
        return d
    if len(d.shape) == 4:
        out = device_array(d.shape, d.dtype)
        launch(_copy4, out.size, d, out)
        return out
    return to_device(d.copy_to_host())


@kernel("T[:], T[:], T[:], b1")
def _add(a, b, out, relu):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):  # grid-stride loop
        v = a[i] + b[i]
        out[i] = 0 if relu and v <= 0 else v


def add(a, b, relu=False):
    """a + b, clamped at zero with ``relu`` (a residual connection and the ReLU after it, in one pass)."""
    out = device_array(a.shape, a.dtype)
    launch(_add, a.size, a.reshape(a.size), b.reshape(b.size), out.reshape(out.size), relu)
    return out
