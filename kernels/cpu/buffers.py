"""A cache of large host buffers: the arrays a training step allocates and frees (activations, gradients,
workspaces) come back with the same sizes every step, so their memory is kept and handed out again instead
of being returned to the operating system and faulted in anew.

glibc serves requests above its mmap threshold with fresh pages and unmaps them on free, so without a cache
each step pays a page fault per 4 KB of every large array (and the unmapping's TLB shootdowns while the
kernels run). Only arrays of at least ``MIN_BYTES`` go through here; smaller ones come from numpy, whose heap
keeps them anyway. An array handed out is an ordinary numpy array over a slice of a cached block; the block
returns to the cache when the array and every view of it are gone: each array is made over a fresh ctypes
view of the block, the base every view of it keeps alive, and a weak reference to that view tells when the
last one went. (A memoryview will not do: numpy takes its own view of the exporter and lets it go.) At most
``MAX_CACHED_BYTES`` of free blocks are kept.
"""
import ctypes
import threading
import weakref

import numpy as np

MIN_BYTES = 1 << 17  # 128 KiB, glibc's initial mmap threshold
MAX_CACHED_BYTES = 1 << 30
_PAGE = 1 << 12
_ALIGN = 64

_free = {}  # block size -> [free blocks]
_live = {}  # id(weak reference) -> (weak reference, block)
_lock = threading.Lock()
_cached = [0]  # bytes in _free


def _release(ref):
    with _lock:
        _, block = _live.pop(id(ref))
        if _cached[0] + block.nbytes <= MAX_CACHED_BYTES:
            _free.setdefault(block.nbytes, []).append(block)
            _cached[0] += block.nbytes


def _aligned(size):
    """size bytes starting on a cache line (a whole AVX-512 vector), as a view of a slightly larger array."""
    raw = np.empty(size + _ALIGN, np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start : start + size]


def empty(shape, dtype=np.float64):
    """An uninitialised C-contiguous array, from the cache when it is large."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    n = 1
    for d in shape:
        n *= d
    nbytes = n * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    size = -(-nbytes // _PAGE) * _PAGE
    with _lock:
        blocks = _free.get(size)
        if blocks:
            block = blocks.pop()
            _cached[0] -= size
        else:
            block = None
    if block is None:
        block = _aligned(size)
    view = (ctypes.c_char * nbytes).from_buffer(block)
    ref = weakref.ref(view, _release)
    with _lock:
        _live[id(ref)] = (ref, block)
    return np.frombuffer(view, dtype, n).reshape(shape)


def zeros(shape, dtype=np.float64):
    a = empty(shape, dtype)
    a.fill(0)
    return a


def cached_bytes():
    """Bytes held in free blocks, ready to be handed out again."""
    return _cached[0]


def clear():
    """Let go of every free block (arrays in use keep theirs until they are gone)."""
    with _lock:
        _free.clear()
        _cached[0] = 0
