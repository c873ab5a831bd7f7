"""Array helpers of the CUDA target: zero-filled arrays, contiguous copies, elementwise product and in-place sum."""
import numpy as np
from numba import cuda

from ._launch import kernel, launch


@kernel("T[:]")
def _fill_zero(a):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):  # grid-stride loop
        a[i] = 0


def zeros(shape, dtype):
    a = cuda.device_array(shape, dtype)
    launch(_fill_zero, a.size, a.reshape(a.size))
    return a


@kernel("T[:], T[:], T[:]")
def _mul(a, b, out):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):  # grid-stride loop
        out[i] = a[i] * b[i]


def mul(a, b):
    out = cuda.device_array(a.shape, a.dtype)
    launch(_mul, a.size, a.reshape(a.size), b.reshape(b.size), out.reshape(out.size))
    return out


@kernel("T[:], T[:]")
def _add_into(dst, src):
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):  # grid-stride loop
        dst[i] += src[i]


def add_into(dst, src):
    launch(_add_into, dst.size, dst.reshape(dst.size), src.reshape(src.size))
    return dst


def contiguous(a):
    """A C-contiguous Numba device array for anything with __cuda_array_interface__ (strided views are
    copied through the host: correct, not fast)."""
    d = a if hasattr(a, "copy_to_host") else cuda.as_cuda_array(a)
    if d.is_c_contiguous():
        return d
    return cuda.to_device(np.ascontiguousarray(d.copy_to_host()))


@kernel("T[:], T[:], T[:]")
def _add(a, b, out):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):  # grid-stride loop
        out[i] = a[i] + b[i]


def add(a, b):
    out = cuda.device_array(a.shape, a.dtype)
    launch(_add, a.size, a.reshape(a.size), b.reshape(b.size), out.reshape(out.size))
    return out
