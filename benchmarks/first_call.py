"""Time of each functional op's first call in a fresh process, with an empty and with a warm Numba cache.

    python benchmarks/first_call.py

Each op is timed in its own fresh interpreter (so shared compilations do not hide in an earlier op); the
cold run points NUMBA_CACHE_DIR at an empty folder, the warm run reuses it.
"""
import json
import os
import subprocess
import sys
import tempfile

OPS = {
    "conv2d": "fc.conv2d(x, w, b, padding=1)",
    "conv2d_backward_input": "fc.conv2d_backward_input(dy, w, x.shape, padding=1)",
    "conv2d_backward_weight": "fc.conv2d_backward_weight(dy, x, w.shape, padding=1)",
    "conv2d_backward_bias": "fc.conv2d_backward_bias(dy)",
    "max_pool2d": "fc.max_pool2d(x, 2)",
    "max_pool2d_backward": "fc.max_pool2d_backward(py, idx, x.shape)",
    "avg_pool2d": "fc.avg_pool2d(x, 2)",
    "avg_pool2d_backward": "fc.avg_pool2d_backward(py, x.shape, 2)",
    "relu": "fc.relu(x)",
    "relu_backward": "fc.relu_backward(x, x)",
}

SETUP = """
import time, numpy as np
import fastconv as fc
x = np.ones((2, 3, 8, 8), np.float32); w = np.ones((4, 3, 3, 3), np.float32); b = np.ones(4, np.float32)
dy = np.ones((2, 4, 8, 8), np.float32); py = np.ones((2, 3, 4, 4), np.float32); idx = np.zeros((2, 3, 4, 4), np.int64)
t = time.perf_counter(); {call}; print(time.perf_counter() - t)
"""


def first_call(call, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", SETUP.format(call=call)], env=env, cwd=cache_dir, capture_output=True,
                         text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return float(out.stdout.split()[-1])


def main():
    rows = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, call in OPS.items():
            cold = first_call(call, cache)
            rows[name] = {"cold_s": cold, "warm_s": first_call(call, cache)}
    print(f"{'op':26s} {'cold s':>8s} {'warm s':>8s}")
    for name, r in rows.items():
        print(f"{name:26s} {r['cold_s']:8.2f} {r['warm_s']:8.3f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
