"""Pin every engine (Numba, BLAS, PyTorch) to the same thread count for the whole benchmark session.

FASTCONV_BENCH_THREADS sets it (default: all cores)."""
import os

import pytest

from fastconv.benchmarks import peers


@pytest.fixture(scope="session", autouse=True)
def pinned_threads():
    limiter = peers.set_threads(int(os.environ.get("FASTCONV_BENCH_THREADS", 0)) or os.cpu_count())
    yield
    if limiter is not None:
        limiter.restore_original_limits()
