"""What ``fastconv info`` reports: versions, threading, CUDA, cache location."""
import platform
import sys
from pathlib import Path


def collect():
    import numba
    import numpy as np

    import fastconv
    from fastconv import cuda
    from fastconv.kernels import config
    from fastconv.kernels import cpu
    from fastconv.kernels.cpu import blocks, wisdom
    from llvmlite import binding as llvm

    x = np.ones((1, 1, 4, 4), np.float32)
    fastconv.relu(x)  # run one parallel kernel so the threading layer is chosen
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not started"
    cache = numba.config.CACHE_DIR or str(Path(config.__file__).parent / "cpu" / "__pycache__")
    return {
        "fastconv": fastconv.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "threading layer": layer,
        "threads": numba.get_num_threads(),
        "cpu cores (numba)": numba.config.NUMBA_NUM_THREADS,
        "cpu (llvm)": numba.config.CPU_NAME or llvm.get_host_cpu_name(),
        "register block": f"{blocks.MR} x {blocks.NR}, {'512-bit vectors' if cpu.WIDE_VECTORS else 'LLVM default vectors'}",
        "cuda": cuda.describe(),
        "kernel cache": cache,
        "kernel cache enabled": config.CACHE,
        "kernel choices": wisdom.describe(),
    }
