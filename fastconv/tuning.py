"""Per-machine kernel choice by measurement: time the candidate kernels of every convolution in one pass of a
model, keep the fastest for each layer shape in the wisdom file (``kernels/cpu/wisdom.py``), and let later
processes on the same machine read it.

Where the plan's built-in rules (thresholds measured on a few CPUs) pick a kernel, a measurement on the CPU
at hand replaces them: the same layer can prefer another kernel on a Zen 4 than on a Zen 5. Cost: one pass of
the model, then each candidate of each distinct layer shape timed for at least ``min_time`` seconds (7 runs
at least; 2-6 s for ResNet-20 at batch 64), after one untimed call that compiles it if the cache lacks it (the first tuning on a fresh install
compiles the kernels the defaults never use, some seconds each).
"""
import json
import time

import numpy as np

from ._checks import to_host
from .checkpoint import atomic_write_bytes
from .kernels.cpu import wisdom

MARGIN = 1.05  # a kernel is kept only when it beats every other candidate by this factor (else: the built-in rule)


def _record(model, x, train):
    wisdom.recording = []
    try:
        y = model(x)
        if train:
            model.backward(np.full(y.shape, 1.0 / y.size, y.dtype))
        return wisdom.recording
    finally:
        wisdom.recording = None


def _measure(op, thunk, min_time):
    """Median ms of each candidate kernel, timed alternately (one call of each in turn, at least 7 rounds and
    ``min_time`` seconds per candidate) so that a drift of the machine's speed hits them alike; their results
    must agree (each is the same maths)."""
    kernels, ref = wisdom.CANDIDATES[op], None
    times = {k: [] for k in kernels}
    try:
        for kernel in kernels:  # one untimed call each: compiles, and checks the result
            wisdom.forced = kernel
            out = to_host(thunk())
            if ref is None:
                ref = out
            elif not np.allclose(out, ref, rtol=1e-3, atol=1e-4 * (np.abs(ref).max() + 1)):
                raise RuntimeError(f"kernels {kernels} disagree on {op}: a bug, please report it")
        start = time.perf_counter()
        while len(times[kernels[0]]) < 7 or time.perf_counter() - start < min_time * len(kernels):
            for kernel in kernels:
                wisdom.forced = kernel
                t = time.perf_counter()
                thunk()
                times[kernel].append(time.perf_counter() - t)
    finally:
        wisdom.forced = None
    return {k: float(np.median(v)) * 1000 for k, v in times.items()}


def tune(model, input_shape, train=True, min_time=0.25, path=None):
    """Measure and store the fastest kernel for each convolution of ``model`` on a batch of ``input_shape``
    (N, C, H, W), in a training step (``train``: forward, then backward) or an inference pass. Returns
    [(shape key, {kernel: ms}, chosen)], chosen None where no kernel was ``MARGIN`` times faster than the rest
    (that shape is left to the built-in rule). The choices are written to the wisdom file (merged with the
    entries of other shapes and machines) and used from the next convolution on."""
    x = np.random.default_rng(0).standard_normal(tuple(input_shape)).astype(model.parameters()[0].dtype)
    with model.mode(train):
        calls = {key: (op, thunk) for op, key, thunk in _record(model, x, train)}
    results = []
    for key, (op, thunk) in calls.items():
        ms = _measure(op, thunk, min_time)
        best = min(ms, key=ms.get)
        clear = all(v >= MARGIN * ms[best] for k, v in ms.items() if k != best)
        results.append((key, ms, best if clear else None))
    _store({key: chosen for key, _, chosen in results}, path)
    return results


def _update(change, path=None):
    """Apply ``change`` to the whole file's {machine: {shape key: kernel}} and write it atomically (unless
    ``change`` returns False: nothing changed); the next lookup reads it again."""
    p = wisdom.path() if path is None else path
    data = wisdom.read_file(p)
    if change(data) is not False:
        atomic_write_bytes(p, json.dumps(data, indent=1, sort_keys=True).encode())
    wisdom.reload()


def _store(choices, path=None):
    def change(data):
        mine = data.setdefault(wisdom.machine_key(), {})
        for key, chosen in choices.items():
            if chosen is None:
                mine.pop(key, None)
            else:
                mine[key] = chosen

    _update(change, path)


def forget(path=None):
    """Remove this machine's measured choices (the built-in rules decide again)."""
    _update(lambda data: data.pop(wisdom.machine_key(), None) is not None, path)
