"""The caching device allocator's bookkeeping, against a fake driver (no GPU needed)."""
import pytest

from fastconv.kernels.cuda.allocator import BlockPool, rounded


class FakeDriver:
    class OOM(Exception):
        pass

    def __init__(self, capacity):
        self.capacity, self.used, self.next, self.live = capacity, 0, 4096, {}
        self.allocs = 0

    def alloc(self, n):
        if self.used + n > self.capacity:
            raise FakeDriver.OOM()
        self.allocs += 1
        ptr, self.next = self.next, self.next + n
        self.live[ptr] = n
        self.used += n
        return ptr

    def free(self, ptr):
        self.used -= self.live.pop(ptr)


def pool(capacity=1 << 30, limit=1 << 30):
    drv = FakeDriver(capacity)
    return BlockPool(drv.alloc, drv.free, lambda e: isinstance(e, FakeDriver.OOM), limit), drv


def test_sizes_round_up_to_512_bytes_then_to_mebibytes():
    assert rounded(1) == 512 and rounded(512) == 512 and rounded(513) == 1024
    assert rounded((1 << 20) - 1) == 1 << 20 and rounded((1 << 20) + 1) == 2 << 20


def test_a_freed_block_serves_the_next_request_of_its_size():
    p, drv = pool()
    a = p.take(1000)
    p.give(*a)
    b = p.take(700)  # rounds to the same 1024-byte block
    assert b[0] == a[0] and drv.allocs == 1 and p.cached == 0
    c = p.take(700)  # that block is in use: a new one
    assert c[0] != a[0] and drv.allocs == 2


def test_steady_state_training_allocates_nothing_new():
    p, drv = pool()
    sizes = [4096, 1 << 21, 300, 4096, 77777]
    for step in range(5):
        blocks = [p.take(s) for s in sizes]
        assert len({b[0] for b in blocks}) == len(sizes)  # no block handed out twice at once
        for b in blocks:
            p.give(*b)
    assert drv.allocs == len(sizes)


def test_out_of_memory_returns_the_cache_and_retries_once():
    p, drv = pool(capacity=3 << 20)
    a, b = p.take(1 << 20), p.take(1 << 20)
    p.give(*a)
    p.give(*b)
    big = p.take(3 << 20)  # only fits once the two cached blocks go back to the driver
    assert big[1] == 3 << 20 and p.cached == 0 and drv.used == 3 << 20
    with pytest.raises(FakeDriver.OOM):
        p.take(1 << 20)  # nothing cached to return: the error stands


def test_the_cache_is_bounded_and_a_reset_forgets_blocks_in_use():
    p, drv = pool(limit=1 << 20)
    a, b = p.take(1 << 20), p.take(1 << 20)
    p.give(*a)
    p.give(*b)  # over the limit: back to the driver
    assert p.cached == 1 << 20 and drv.used == 1 << 20
    c = p.take(512)
    p.release_all(reset=True)
    assert drv.used == 512 and p.cached == 0
    p.give(*c)  # freed by the reset context, not cached again
    assert p.cached == 0
