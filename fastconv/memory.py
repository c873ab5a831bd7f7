"""Keep freed memory for reuse instead of returning it to the operating system (glibc only), for the whole
process.

A training step frees and allocates the same large arrays (activations, gradients) every time. glibc serves
large requests with fresh mmap'd pages and returns them with munmap on free, so each step pays page faults and
unmapping (with cross-core TLB flushes while the kernel threads run). fastconv's own large arrays avoid that
without any setting: they come from its buffer cache (``kernels/cpu/buffers.py``). ``reuse_freed_memory()``
extends the same to every allocation of the process, other libraries' included, by raising glibc's mmap and
trim thresholds (the heap then keeps its high-water mark). The library never does it on its own; ``fastconv
train``, a long-running job, does.
"""
import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = []


def reuse_freed_memory():
    """Ask glibc to keep freed memory in the heap (mmap threshold 1 GiB, no trimming below 2 GiB). Returns
    True when applied (or already applied), False where the C library is not glibc."""
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    if ok:
        _applied.append(True)
    return ok
