"""Targets: where an op's arrays live decides which kernels run. The functional layer asks ``backend_for``
and gets an object with the kernels and the few allocation helpers it needs."""
import numpy as np

from . import kernels as _kernels_pkg  # noqa: F401  (fastconv.kernels must be importable)
from ._checks import is_device_array


class CPUBackend:
    """numpy arrays, kernels from fastconv.kernels.cpu."""

    name = "cpu"
    # stride-1 forward passes read the input in place (no packing) for any number of output channels
    direct_max_channels = 1 << 62
    # dX: one stride-1 product per stride phase of dx (conv2d_backward_input_phased), reading the delta in place
    # instead of spreading it into a mostly-zero buffer for the forward kernel
    phased_dx = True

    def __init__(self):
        from .kernels import cpu

        self.k = cpu

    @staticmethod
    def empty(shape, dtype):
        return np.empty(shape, dtype)

    @staticmethod
    def zeros(shape, dtype):
        return np.zeros(shape, dtype)

    @staticmethod
    def contiguous(a):
        return np.ascontiguousarray(a)

    @staticmethod
    def pad(x, ph, pw):
        """Zero-pad the two spatial axes of a contiguous NCHW array (no copy when there is no padding)."""
        if ph == 0 and pw == 0:
            return x
        from .kernels.cpu.conv import pad_into

        N, C, H, W = x.shape
        return pad_into(x, np.empty((N, C, H + 2 * ph, W + 2 * pw), x.dtype), ph, pw)

    @staticmethod
    def weight_matrix(w, flip=False):
        """(K, C, R, S) -> (K, C*R*S) rows, zero-padded to the kernels' reduction multiple. With ``flip``, the
        180-degree-flipped, channel-transposed kernel (C, K, R, S) instead: the one dX correlates with."""
        from .kernels.cpu.conv import padded

        if flip:
            w = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        rows = w.shape[0]
        crs = w.shape[1] * w.shape[2] * w.shape[3]
        w2 = np.zeros((rows, padded(crs)), w.dtype)
        w2[:, :crs] = w.reshape(rows, crs)
        return w2

    @staticmethod
    def asarray(a):
        return np.ascontiguousarray(a)

    @staticmethod
    def mean(a):
        return float(np.mean(a))

    @staticmethod
    def use_phased_forward(C, K, sh, sw):
        """Whether a strided forward splits its input into stride phases (``conv2d_forward_phased``) rather than
        broadcasting positions against vectors of output channels (``conv2d_forward``): for fewer output
        channels than half a micro-kernel block, and wherever the C*sh*sw phase planes are at most half as many
        as the output channels (stem layers: there the phase split costs less than the other kernel's
        transposed stores). Measured: 3 -> 64 channels, 7x7 stride 2 on 112x112, 1.15 vs 1.50 ms; 32 -> 32,
        3x3 stride 2, 0.30 vs 0.26 ms."""
        from .kernels.cpu.micro import NR

        return 2 * K < NR or 2 * C * sh * sw <= K

    @staticmethod
    def use_unfolded_forward(x_shape, w_shape, ph, pw, Q, itemsize):
        """Whether a stride-1 forward copies its input into kernel-column shifts (``conv2d_forward_unfolded``)
        instead of reading the padded input in place (``conv2d_forward_direct``), which computes its outputs
        on the padded width and so S - 1 junk columns per row of W + 2*pw: when those are at least an eighth
        of the row, with more output channels than the thin block holds, a copy of at most 256 KB per image,
        and at least an image per thread (the images are the unit of work). Measured (64 images, 2 threads),
        in place vs unfolded: LeNet C2 (6 -> 16, 14x14, 5x5) 0.127 vs 0.100 ms; 64 -> 64 on 7x7, 3x3 pad 1,
        0.75 vs 0.65 ms; 32 -> 32 on 14x14, 0.65 vs 0.60 ms; but 32 -> 64 on 28x28 (a junk fifteenth) 2.33
        vs 2.47 ms."""
        from numba import get_num_threads

        from .kernels.cpu.micro import MT

        N, C, H, W = x_shape
        K, _, R, S = w_shape
        Wp = W + 2 * pw
        return (K > MT and 8 * (Wp - Q) >= Wp and C * S * (H + 2 * ph) * Q * itemsize <= 256 * 1024
                and N >= get_num_threads())

    @staticmethod
    def use_direct_dw(xp, K):
        """Whether a stride-1 dW takes the unpacked dot-product kernel: only for fewer output channels than half
        a micro-kernel block (where the packed kernel's vectors over K would be mostly empty), and only for
        finite inputs, because that kernel multiplies zero padding columns by real inputs (0 * Inf is NaN)."""
        from .kernels.cpu.micro import NR

        if 2 * K >= NR:
            return False
        with np.errstate(over="ignore", invalid="ignore"):
            return bool(np.isfinite(np.sum(xp)))

    @staticmethod
    def flipped(w):
        """(K, C, R, S) -> (C, K, R, S) with both spatial axes reversed: the 180-degree-flipped kernel."""
        return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))

    @staticmethod
    def mul(a, b):
        return a * b

    @staticmethod
    def add_into(dst, src):
        dst += src
        return dst

    @staticmethod
    def minmax(a):
        return int(a.min()), int(a.max())

    @staticmethod
    def flat(a):
        return a.reshape(-1)


_CPU = None


def cpu():
    global _CPU
    if _CPU is None:
        _CPU = CPUBackend()
    return _CPU


def backend_for(*arrays):
    """The backend of the given arrays (None entries ignored); CPU and CUDA arrays may not be mixed."""
    if all(type(a) is np.ndarray or a is None for a in arrays):  # the common case, checked cheaply
        return cpu()
    present = [a for a in arrays if a is not None]
    on_device = [is_device_array(a) for a in present]
    if any(on_device):
        if not all(on_device):
            raise TypeError("arrays must all be on the CPU (numpy) or all on the GPU (CUDA arrays), got a mix")
        from . import cuda

        return cuda.backend()
    return cpu()
