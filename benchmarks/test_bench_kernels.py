"""pytest-benchmark suite: every conv, pooling and BatchNorm pass, fastconv and each peer, one group per case
and pass. Correctness against the other engines is asserted in the same run. With --benchmark-disable (the
default in pyproject) each function runs once, so this doubles as a plain test.

    pytest benchmarks --benchmark-enable --benchmark-columns=median,iqr,rounds
"""
import pytest

from fastconv.benchmarks import cases, peers

ENGINES = {e.name: e for e in peers.engines()}


def _bench(benchmark, fn):
    return benchmark.pedantic(fn, rounds=5, warmup_rounds=1, iterations=1)  # warm-up keeps JIT compiling out


@pytest.mark.parametrize("engine", sorted(ENGINES, key=lambda n: n != "fastconv"))
@pytest.mark.parametrize("which", cases.CONV_PASSES)
@pytest.mark.parametrize("case", cases.CONV, ids=lambda c: c.name)
def test_conv(benchmark, case, which, engine):
    benchmark.group = f"conv {case.name} {which}"
    benchmark.extra_info["gflop"] = case.flops / 1e9
    result = _bench(benchmark, ENGINES[engine].conv(case, which))
    reference = ENGINES["im2col" if engine == "fastconv" else "fastconv"].conv(case, which)()
    peers.assert_same(result, reference, f"{engine} {case.name} {which}")


@pytest.mark.parametrize("engine", sorted(ENGINES, key=lambda n: n != "fastconv"))
@pytest.mark.parametrize("which", cases.POOL_PASSES)
@pytest.mark.parametrize("case", cases.POOL, ids=lambda c: c.name)
def test_pool(benchmark, case, which, engine):
    benchmark.group = f"pool {case.name} {which}"
    result = _bench(benchmark, ENGINES[engine].pool(case, which))
    reference = ENGINES["im2col" if engine == "fastconv" else "fastconv"].pool(case, which)()
    peers.assert_same(result, reference, f"{engine} {case.name} {which}")


@pytest.mark.parametrize("engine", sorted(ENGINES, key=lambda n: n != "fastconv"))
@pytest.mark.parametrize("which", cases.NORM_PASSES)
@pytest.mark.parametrize("case", cases.NORM, ids=lambda c: c.name)
def test_norm(benchmark, case, which, engine):
    fn = ENGINES[engine].norm(case, which)
    if fn is None:
        pytest.skip(f"{engine} has no BatchNorm")
    benchmark.group = f"norm {case.name} {which}"
    result = _bench(benchmark, fn)
    others = [e for e in ENGINES.values() if e.name != engine and e.norm(case, which) is not None]
    if others:
        peers.assert_same(result, others[0].norm(case, which)(), f"{engine} {case.name} {which}")
