"""LeNet-5 and ResNet-20 training-step and inference throughput, fastconv and (when installed) PyTorch."""
import pytest

from fastconv.benchmarks import harness, peers

NAMES = [e.name for e in peers.engines() if e.name != "im2col"]


@pytest.mark.parametrize("engine", NAMES)
@pytest.mark.parametrize("model, batch, train", [("lenet5", 64, True), ("lenet5", 256, True), ("lenet5", 256, False),
                                                 ("resnet20", 64, True)],
                         ids=["lenet5-train64", "lenet5-train256", "lenet5-infer256", "resnet20-train64"])
def test_model(benchmark, model, batch, train, engine):
    benchmark.group = f"{model} {'train' if train else 'infer'} batch {batch}"
    ips = benchmark.pedantic(harness.model_throughput, args=(batch, train, engine, 0.05, model), rounds=1, iterations=1)
    benchmark.extra_info["images_per_second"] = ips
    assert ips > 0
