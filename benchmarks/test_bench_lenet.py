"""LeNet-5 training-step and inference throughput, fastconv and (when installed) PyTorch."""
import pytest

from fastconv import reuse_freed_memory
from fastconv.benchmarks import harness, peers

NAMES = [e.name for e in peers.engines() if e.name != "im2col"]


@pytest.mark.parametrize("engine", NAMES)
@pytest.mark.parametrize("batch, train", [(64, True), (256, True), (256, False)], ids=["train64", "train256", "infer256"])
def test_lenet(benchmark, batch, train, engine):
    reuse_freed_memory()  # as `fastconv train` and `fastconv bench` do (after the kernel benchmarks)
    benchmark.group = f"lenet5 {'train' if train else 'infer'} batch {batch}"
    ips = benchmark.pedantic(harness.lenet_throughput, args=(batch, train, engine, 0.05), rounds=1, iterations=1)
    benchmark.extra_info["images_per_second"] = ips
    assert ips > 0
