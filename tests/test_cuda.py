"""The CUDA target without a GPU: twin kernels, the simulator against the CPU, PTX for sm_90, clear errors."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastconv
import fastconv.cuda as fcuda
from fastconv.models import lenet5

HERE = Path(__file__).resolve().parent
cuda = pytest.importorskip("numba.cuda", reason="numba-cuda not installed (pip install 'fastconv[cuda]')")


def test_both_plans_offer_the_same_entry_points():
    """The functional layer calls one entry point of the target's plan: both plans must offer the same set,
    with the same argument names."""
    import inspect

    from fastconv.kernels import ENTRY_POINTS
    from fastconv.kernels.cpu import plan as cpu_plan
    from fastconv.kernels.cuda import plan as cuda_plan

    assert set(cpu_plan.__all__) == set(cuda_plan.__all__) == set(ENTRY_POINTS)
    for name in ENTRY_POINTS:
        f_cpu, f_cuda = getattr(cpu_plan, name), getattr(cuda_plan, name)
        assert callable(f_cpu) and callable(f_cuda), name
        if inspect.isfunction(f_cpu) and inspect.isfunction(f_cuda):
            assert list(inspect.signature(f_cpu).parameters) == list(inspect.signature(f_cuda).parameters), name


TARGET = os.environ.get("FASTCONV_CUDA_TESTS", "simulator")  # "device": the same check on the real GPU


def test_every_cuda_kernel_against_the_cpu(tmp_path):
    """Numba's CUDA simulator, with 8 threads per block, 16 x 16 tiles of 16 threads and at most 3 blocks per grid axis, so
    tiny inputs span several blocks and tiles and every grid-stride loop wraps; then a whole LeNet-5 training step (SGD and Adam) on both
    targets and `train --device cuda`. Every device array is the strict DeviceNDArray stand-in
    (strict_device.py): an attribute only the simulator's fake arrays have, or a hidden transpose, fails."""
    if TARGET == "device":
        if not fcuda.is_available():
            pytest.skip("FASTCONV_CUDA_TESTS=device, but no GPU answers")
        env = dict(os.environ, FASTCONV_CUDA_TPB="64")
    else:
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", FASTCONV_CUDA_TPB="8", FASTCONV_CUDA_MAX_BLOCKS="3",
                   FASTCONV_CUDA_TILE="16,16,16,4,4")
    r = subprocess.run([sys.executable, "-m", "fastconv.benchmarks.cuda_check", "--strict", "--no-timing"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "comparisons passed" in r.stdout


def _ptx_cases():
    from fastconv.kernels.cuda import _launch, plan  # noqa: F401  (importing the plan registers every kernel)

    for name, (fn, template) in sorted(_launch.SIGNATURES.items()):
        for t in ("float32", "float64"):
            yield pytest.param(fn, f"void({template.replace('T', t)})", id=f"{name}-{t}")


@pytest.mark.parametrize("fn, signature", list(_ptx_cases()))
def test_kernel_compiles_to_ptx_for_sm_90(fn, signature):
    try:
        ptx, _ = cuda.compile_ptx(fn, signature, cc=(9, 0))
    except Exception as e:  # the toolchain (NVVM) comes with the cuda extra
        if "NVVM" in str(e) or "libnvvm" in str(e).lower():
            pytest.skip(f"no NVVM: {e}")
        raise
    assert ".target sm_90" in ptx and ".entry" in ptx


@pytest.mark.skipif(fcuda.is_available(), reason="a GPU is present")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    assert fcuda.is_available() is False
    with pytest.raises(RuntimeError, match="CUDA was asked for but is not available"):
        lenet5().to("cuda")
    from fastconv.cli import main

    assert main(["train", "--device", "cuda", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "CUDA was asked for" in capsys.readouterr().err
    # and the CPU target is untouched
    assert fastconv.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))).sum() == 16.0


def test_strict_stand_in_has_only_the_device_array_api():
    """The stand-in refuses what numba-cuda's DeviceNDArray lacks (numpy's itemsize, astype, arithmetic) and the
    transposes that would launch a copy kernel; what it has behaves as the array it wraps."""
    from fastconv.benchmarks.strict_device import HiddenTransposeError, StrictDeviceArray

    class Fake:  # the few methods of a simulator array the stand-in forwards to
        def __init__(self, a):
            self.a = a
            self.shape, self.strides, self.dtype = a.shape, a.strides, a.dtype

        def copy_to_host(self, ary=None, stream=0):
            return self.a.copy()

        def reshape(self, *shape, **kw):
            return Fake(self.a.reshape(*shape))

        def is_c_contiguous(self):
            return self.a.flags.c_contiguous

    d = StrictDeviceArray(Fake(np.arange(6.0).reshape(2, 3)))
    assert d.shape == (2, 3) and d.size == 6 and d.nbytes == 48 and d.dtype == np.float64
    np.testing.assert_array_equal(d.reshape(3, 2).copy_to_host(), np.arange(6.0).reshape(3, 2))
    for attr in ("itemsize", "astype", "sum", "min"):
        with pytest.raises(AttributeError):
            getattr(d, attr)
    with pytest.raises(TypeError):
        d * 2
    with pytest.raises(HiddenTransposeError):
        d.T
    with pytest.raises(HiddenTransposeError):
        d.transpose()


@pytest.mark.parametrize("name", ["_relu", "_relu_backward", "_tanh", "_tanh_backward", "_sigmoid", "_sigmoid_backward",
                                  "_sgd", "_adam", "_add", "_mul", "_conv_tiles", "_conv_direct", "_weight_tiles",
                                  "_bias_partials", "_add_partials", "_gemm", "_max_backward", "_avg_forward",
                                  "_avg_backward", "_hits"])
def test_float32_kernels_do_no_float64_arithmetic(name):
    """A literal 0 or 1, or a float64 hyper-parameter, in a float32 kernel makes the GPU work in float64 (at a
    fraction of the float32 rate on most NVIDIA parts): in the float32 PTX of these kernels no f64 arithmetic
    may remain (loading a float64 parameter and converting it once is allowed)."""
    import re

    from fastconv.kernels.cuda import _launch, plan  # noqa: F401

    fn, template = _launch.SIGNATURES[name]
    ptx, _ = cuda.compile_ptx(fn, f"void({template.replace('T', 'float32')})", cc=(9, 0))
    f64 = re.findall(r"^\s*((?:add|sub|mul|fma|div|max|min|abs|neg|sqrt|rcp|setp)[a-z0-9.]*\.f64)\b", ptx, re.M)
    assert not f64, f64[:5]
