"""Index ranges shared by the pooling and convolution kernels: which outputs of a strided sweep land inside an
array (the rest fall in its padding), worked out once so the loops over them need no bounds branches."""
from ..config import cpu_kernel


@cpu_kernel(parallel=False, inline=True)
def window(o, stride, pad, k, size):
    """[start, end) of output o's window along one axis, clipped to the input (padding lies outside)."""
    start = o * stride - pad
    return max(start, 0), min(start + k, size)


@cpu_kernel(parallel=False, inline=True)
def inside(off, step, count, size):
    """[lo, hi): the j < count whose position j*step + off lies inside [0, size) (empty: lo == hi)."""
    lo = 0 if off >= 0 else (-off + step - 1) // step
    hi = min(count, (size - 1 - off) // step + 1) if off <= size - 1 else 0
    return lo, max(lo, hi)
