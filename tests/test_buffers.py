"""The buffer cache: an array's memory is never handed out again while the array or any view of it lives;
freed blocks are reused; the cache is bounded; allocation from many threads is safe."""
import gc
import threading

import numpy as np
import pytest

import fastconv as fc
from fastconv.kernels.cpu import buffers


@pytest.fixture(autouse=True)
def fresh_cache():
    buffers.clear()
    yield
    buffers.clear()


def test_small_arrays_come_from_numpy_and_large_ones_from_the_cache():
    small = buffers.empty((10, 10), np.float32)
    assert small.base is None  # numpy's own
    big = buffers.empty((64, 6, 28, 28), np.float32)
    assert big.shape == (64, 6, 28, 28) and big.dtype == np.float32 and big.flags.c_contiguous and big.flags.writeable
    assert big.ctypes.data % 64 == 0
    z = buffers.zeros((300, 1000), np.float64)
    assert not z.any()


def test_memory_is_not_reused_while_a_view_lives():
    a = buffers.empty((256, 1024), np.float32)
    a[...] = 7
    view = a[3:, ::2].T  # a view of a view
    address = a.ctypes.data
    del a
    gc.collect()
    assert buffers.cached_bytes() == 0  # the view still holds the block
    others = [buffers.empty((256, 1024), np.float32) for _ in range(3)]
    assert all(o.ctypes.data != address for o in others)
    for o in others:
        o[...] = -1
    assert (view == 7).all()
    del view, others
    gc.collect()
    again = buffers.empty((256, 1024), np.float32)
    assert buffers.cached_bytes() == 2 * 256 * 1024 * 4  # three blocks freed, one handed out again
    assert again.nbytes == 256 * 1024 * 4


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(buffers, "MAX_CACHED_BYTES", 3 << 20)
    arrays = [buffers.empty((1 << 20,), np.uint8) for _ in range(8)]
    del arrays
    gc.collect()
    assert buffers.cached_bytes() <= 3 << 20


def test_threads_allocating_at_once_never_share_memory():
    errors = []

    def work(k):
        try:
            for _ in range(200):
                a = buffers.empty((40_000,), np.float64)
                a[...] = k
                if not (a == k).all():
                    errors.append(k)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_ops_results_survive_later_ops():
    """Outputs handed to the user are theirs: later calls reuse only memory whose arrays are gone."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 32, 32)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    first = fc.conv2d(x, w, padding=1)
    kept = first.copy()
    for _ in range(3):
        fc.conv2d(x + 1, w, padding=1)
    np.testing.assert_array_equal(first, kept)
