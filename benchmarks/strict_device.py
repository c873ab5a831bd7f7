"""A strict stand-in for numba-cuda's DeviceNDArray: it has the attributes and methods the real class has
(read from numba_cuda/numba/cuda/cudadrv/devicearray.py) and nothing else, so code that only runs because the
simulator's fake arrays forward unknown attributes to numpy (``itemsize``, ``astype``, arithmetic) fails here.
``.T`` and ``transpose()`` exist on the real class but launch a transpose kernel and copy: the stand-in
refuses them, so no such hidden copy can creep into the CUDA target.

``install()`` makes every device array of the CUDA target one of these (through ``kernels.cuda.memory``'s
three constructors) and unwraps them at kernel launch.
"""
import numpy as np


class HiddenTransposeError(AssertionError):
    pass


class StrictDeviceArray:
    __slots__ = ("_a",)

    def __init__(self, a):
        object.__setattr__(self, "_a", a)

    @staticmethod
    def wrap(a):
        return a if isinstance(a, StrictDeviceArray) or np.isscalar(a) else StrictDeviceArray(a)

    # attributes of DeviceNDArrayBase / DeviceNDArray
    shape = property(lambda self: tuple(self._a.shape))
    strides = property(lambda self: tuple(self._a.strides))
    ndim = property(lambda self: len(self._a.shape))
    size = property(lambda self: int(np.prod(self._a.shape, dtype=np.int64)))
    dtype = property(lambda self: np.dtype(self._a.dtype))
    nbytes = property(lambda self: self.dtype.itemsize * self.size)
    alloc_size = property(lambda self: self._a.alloc_size)
    stream = property(lambda self: 0)
    gpu_data = property(lambda self: None)
    flags = property(lambda self: {"C_CONTIGUOUS": self.is_c_contiguous(), "F_CONTIGUOUS": self.is_f_contiguous()})

    def is_c_contiguous(self):
        return self._a.is_c_contiguous()

    def is_f_contiguous(self):
        return self._a.is_f_contiguous()

    def copy_to_host(self, ary=None, stream=0):
        return self._a.copy_to_host(ary, stream=stream)

    def copy_to_device(self, ary, stream=0):
        if isinstance(ary, StrictDeviceArray):
            ary = ary._a
        self._a.copy_to_device(ary, stream=stream)

    def reshape(self, *newshape, **kws):
        return StrictDeviceArray(self._a.reshape(*newshape, **kws))

    def ravel(self, order="C", stream=0):
        return StrictDeviceArray(self._a.ravel(order=order))

    def bind(self, stream=0):
        return self

    def view(self, dtype):
        return StrictDeviceArray(self._a.view(dtype))

    def split(self, section, stream=0):
        return [StrictDeviceArray(a) for a in self._a.split(section)]

    def squeeze(self, axis=None, stream=0):
        return StrictDeviceArray(self._a.squeeze(axis))

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, item):
        return StrictDeviceArray.wrap(self._a[item])

    def getitem(self, item, stream=0):
        return self[item]

    def __setitem__(self, key, value):
        self._a[key] = value._a if isinstance(value, StrictDeviceArray) else value

    def setitem(self, key, value, stream=0):
        self[key] = value

    def __array__(self, dtype=None, copy=None):
        h = self.copy_to_host()
        return h if dtype is None else h.astype(dtype)

    @property
    def T(self):
        raise HiddenTransposeError("DeviceNDArray.T launches a transpose kernel and copies the array")

    def transpose(self, axes=None):
        raise HiddenTransposeError("DeviceNDArray.transpose launches a transpose kernel and copies the array")

    def __repr__(self):
        return f"StrictDeviceArray(shape={self.shape}, dtype={self.dtype})"


def install():
    """Route every device array of the CUDA target through the stand-in."""
    from fastconv.kernels.cuda import _launch, memory

    plain = (memory.device_array, memory.to_device, memory.as_device)
    memory.device_array = lambda shape, dtype: StrictDeviceArray(plain[0](shape, dtype))
    memory.to_device = lambda host: StrictDeviceArray(plain[1](host))
    memory.as_device = lambda obj: obj if isinstance(obj, StrictDeviceArray) else StrictDeviceArray(plain[2](obj))
    _launch.kernel_arg = lambda a: a._a if isinstance(a, StrictDeviceArray) else a
