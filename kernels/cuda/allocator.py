"""A caching allocator for device memory: a training step allocates the same few dozen arrays every step, and
each ``cuMemAlloc``/``cuMemFree`` pair costs tens of microseconds and synchronises the device. Freed blocks
are kept by rounded size and handed out again, as PyTorch's caching allocator does.

``BlockPool`` is the bookkeeping (plain Python, tested with a fake driver); ``install()`` makes it Numba's
memory manager through the External Memory Management plugin interface, before the first CUDA context is
made. Reuse is safe because fastconv queues all its work on one stream: a block freed on the host is reused
by work queued after everything that used it. ``FASTCONV_CUDA_POOL=0`` (or a ``NUMBA_CUDA_MEMORY_MANAGER`` of
the user's own) leaves Numba's allocator in place.
"""
import os

SMALL = 1 << 20  # blocks below 1 MiB are rounded up to 512 bytes, larger ones to 1 MiB
CACHE_LIMIT = 4 << 30  # at most this many bytes of free blocks are kept; more are returned to the driver


def rounded(size):
    """The size of the block that serves a request of ``size`` bytes."""
    unit = 512 if size < SMALL else SMALL
    return max(unit, -(-size // unit) * unit)


class BlockPool:
    """Free device blocks by size. ``alloc(nbytes) -> ptr`` and ``free(ptr)`` are the driver's; ``is_oom(e)``
    says whether an exception from ``alloc`` is an out-of-memory error (the cached blocks are then returned
    to the driver and the allocation tried once more)."""

    def __init__(self, alloc, free, is_oom, limit=CACHE_LIMIT):
        self._alloc, self._free, self._is_oom, self.limit = alloc, free, is_oom, limit
        self._blocks = {}  # size -> [ptr, ...]
        self.cached = 0  # bytes in free blocks
        self.generation = 0  # bumped by release_all(reset=True): blocks of an older generation are not taken back

    def take(self, size):
        """(ptr, block size, generation) for a request of ``size`` bytes, from the cache when it has a block."""
        n = rounded(size)
        free = self._blocks.get(n)
        if free:
            self.cached -= n
            return free.pop(), n, self.generation
        try:
            return self._alloc(n), n, self.generation
        except Exception as e:
            if not self._is_oom(e) or not self.cached:
                raise
        self.release_all()
        return self._alloc(n), n, self.generation

    def give(self, ptr, n, generation):
        """A block of ``n`` bytes is free again (called when the last array over it goes)."""
        if generation != self.generation:  # its context was reset: the driver freed it already
            return
        if self.cached + n > self.limit:
            self._free(ptr)
            return
        self._blocks.setdefault(n, []).append(ptr)
        self.cached += n

    def release_all(self, reset=False):
        """Return every cached block to the driver (``reset``: the context is going, forget the blocks in use)."""
        for ptrs in self._blocks.values():
            for ptr in ptrs:
                self._free(ptr)
        self._blocks.clear()
        self.cached = 0
        if reset:
            self.generation += 1


def manager_class():
    """The EMM plugin class: Numba's own device memory manager with ``memalloc`` served from a BlockPool."""
    import weakref

    from numba.cuda.cudadrv import driver as drv

    def is_oom(e):
        return isinstance(e, drv.CudaAPIError) and e.code == drv.binding.CUresult.CUDA_ERROR_OUT_OF_MEMORY

    class CachingMemoryManager(drv.NumbaCUDAMemoryManager):
        pool = None

        def initialize(self):
            super().initialize()
            if self.pool is None:
                self.pool = BlockPool(drv.driver.cuMemAlloc, drv.driver.cuMemFree, is_oom)

        def memalloc(self, size):
            ptr, n, generation = self.pool.take(size)
            pool = self.pool

            def finalizer():  # holds the pool, not the pointer object
                pool.give(ptr, n, generation)

            return drv.MemoryPointer(weakref.proxy(self.context), ptr, size, finalizer=finalizer)

        def reset(self):
            if self.pool is not None:
                self.pool.release_all(reset=True)
            super().reset()

    return CachingMemoryManager


_installed = []


def install():
    """Make the caching allocator Numba's memory manager (once; before the first CUDA context is made, or it
    applies to later contexts only). Returns whether it is in place."""
    if _installed:
        return _installed[0]
    ok = os.environ.get("FASTCONV_CUDA_POOL", "1") != "0" and not os.environ.get("NUMBA_CUDA_MEMORY_MANAGER")
    if ok:
        from numba import cuda

        cuda.set_memory_manager(manager_class())
    _installed.append(ok)
    return ok
