"""Reliability: fuzzing, bounds checking, non-finite values, concurrency, file safety, long runs."""
import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
import fastconv.checkpoint as ckpt
import fastconv.nn as nn
import reference as ref
from fastconv.models import lenet5

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------- fuzzing

ARG_NAMES = ("x", "weight", "bias", "stride", "padding", "dilation", "kernel_size", "dy", "indices", "x_shape",
             "weight_shape", "kernel", "channels", "arrays")
junk = st.one_of(st.integers(-2, 4), st.tuples(st.integers(-1, 3), st.integers(-1, 3)),
                 st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2)), st.floats(0.5, 2.5),
                 st.just("2"), st.none(), st.just(True))
dims = st.lists(st.integers(0, 6), min_size=2, max_size=5)
dtypes = st.sampled_from([np.float32, np.float64, np.float64, np.int32, np.complex64])


def _array(shape, dtype, rng):
    return (rng.standard_normal(shape) * 2).astype(dtype)


def _named(err):
    return any(n in str(err) for n in ARG_NAMES)


@given(xs=dims, ws=dims, st_=junk, pad=junk, dil=junk, xd=dtypes, wd=dtypes, use_bias=st.booleans(),
       seed=st.integers(0, 1000))
def test_fuzz_conv2d(xs, ws, st_, pad, dil, xd, wd, use_bias, seed):
    rng = np.random.default_rng(seed)
    x, w = _array(xs, xd, rng), _array(ws, wd, rng)
    b = _array(ws[:1], wd, rng) if use_bias else None
    kw = dict(stride=st_, padding=pad, dilation=dil)
    try:
        y = fc.conv2d(x, w, b, **kw)
    except (ValueError, TypeError) as e:
        assert _named(e), str(e)
        return
    # it ran: every input was valid, and the result matches the reference
    assert x.ndim == 4 and w.ndim == 4 and x.dtype == w.dtype and x.dtype.kind == "f" and min(x.shape) > 0
    np.testing.assert_allclose(y, ref.conv2d(x, w, b, **kw), rtol=1e-4, atol=1e-4)


@given(xs=dims, k=junk, st_=junk, pad=junk, xd=dtypes, seed=st.integers(0, 1000), avg=st.booleans())
def test_fuzz_pooling(xs, k, st_, pad, xd, seed, avg):
    rng = np.random.default_rng(seed)
    x = _array(xs, xd, rng)
    try:
        y = fc.avg_pool2d(x, k, st_, pad) if avg else fc.max_pool2d(x, k, st_, pad)[0]
    except (ValueError, TypeError) as e:
        assert _named(e), str(e)
        return
    expect = ref.avg_pool2d(x, k, st_, pad) if avg else ref.max_pool2d(x, k, st_, pad)[0]
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-5)


@given(shape=dims, dshape=dims, idx_dtype=st.sampled_from([np.int64, np.int32, np.float64]), lo=st.integers(-3, 0),
       hi=st.integers(1, 60), seed=st.integers(0, 1000))
def test_fuzz_max_pool_backward_never_writes_out_of_bounds(shape, dshape, idx_dtype, lo, hi, seed):
    rng = np.random.default_rng(seed)
    dy = _array(dshape, np.float64, rng)
    idx = rng.integers(lo, hi, size=dshape).astype(idx_dtype)
    try:
        dx = fc.max_pool2d_backward(dy, idx, shape)
    except (ValueError, TypeError) as e:
        assert _named(e), str(e)
        return
    assert dx.shape == tuple(shape) and 0 <= idx.min() and idx.max() < shape[2] * shape[3]


@pytest.mark.parametrize("cpu", ["host", "haswell"])
def test_bounds_checked_sweep(cpu):
    """Every op over edge-case shapes, compiled with NUMBA_BOUNDSCHECK=1: an out-of-bounds access would raise.
    Also compiled for an AVX2 CPU (haswell), which gives the micro-kernel its other block shape (6 x 16)."""
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", FASTCONV_NO_CACHE="1", PYTHONPATH=str(HERE))
    if cpu != "host":
        env["NUMBA_CPU_NAME"] = cpu
    r = subprocess.run([sys.executable, str(HERE / "sweep.py")], env=env, cwd=HERE.parent.parent, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "conv shapes checked" in r.stdout
    if cpu == "haswell":
        assert "block 6x16" in r.stdout


# ---------------------------------------------------------------- non-finite values


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_propagate(bad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 6, 6))
    x[1, 0, 2, 3] = bad
    w = rng.standard_normal((3, 2, 3, 3))
    y = fc.conv2d(x, w, padding=1)
    touched = np.zeros((6, 6), bool)
    touched[1:4, 2:5] = True  # outputs whose window holds the bad input
    assert np.all(~np.isfinite(y[1][:, touched])) and np.all(np.isfinite(y[1][:, ~touched])) and np.all(np.isfinite(y[0]))
    dy = rng.standard_normal(y.shape)
    dw = fc.conv2d_backward_weight(dy, x, w.shape, padding=1)
    np.testing.assert_allclose(dw, ref.conv2d_backward_weight(dy, x, w.shape, padding=1))  # NaN where the reference has NaN
    p, idx = fc.max_pool2d(x, 2)
    assert (np.isnan(p[1, 0, 1, 1]) if np.isnan(bad) else p[1, 0, 1, 1] == np.inf) and idx[1, 0, 1, 1] == 2 * 6 + 3
    assert not np.isfinite(fc.avg_pool2d(x, 2)[1, 0, 1, 1])
    assert np.isnan(fc.relu(np.array([np.nan, -1.0, 2.0]))[0])


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from fastconv import data
    from fastconv import train as T

    digits = data.load_digits()
    small = data.Split(digits.x_train[:256], digits.y_train[:256], digits.x_test[:64], digits.y_test[:64], "s")
    original = T.batch_rng

    def poison(seed, epoch, batch):  # in epoch 2 a batch of NaN images arrives
        if epoch == 1 and batch == 2:
            monkeypatch.setattr(T.data, "to_input", lambda im: np.full((len(im), 1, 28, 28), np.nan, np.float32))
        return original(seed, epoch, batch)

    monkeypatch.setattr(T, "batch_rng", poison)
    with pytest.raises(FloatingPointError, match="non-finite training loss .* epoch 2, batch 2.*last good checkpoint"):
        T.train(T.TrainConfig(epochs=3, batch_size=64, out=str(tmp_path), progress=False), split=small, log=lambda *a: None)
    good = ckpt.load(tmp_path / "last.npz")
    assert good.position["epoch"] == 1
    assert all(np.all(np.isfinite(v)) for v in good.model.state_dict().values())


# ---------------------------------------------------------------- concurrency


def test_predictions_from_a_thread_pool_match_serial_ones():
    nn.manual_seed(0)
    model = lenet5().eval()
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((int(rng.integers(1, 33)), 1, 28, 28)).astype(np.float32) for _ in range(48)]
    serial = [model(b) for b in batches]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(model, batches))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_functional_ops_from_many_threads():
    rng = np.random.default_rng(2)
    jobs = [(rng.standard_normal((4, 3, 12, 12)).astype(np.float32), rng.standard_normal((5, 3, 3, 3)).astype(np.float32))
            for _ in range(32)]

    def work(job):
        x, w = job
        y = fc.conv2d(x, w, padding=1)
        return y, fc.conv2d_backward_weight(y, x, w.shape, padding=1), fc.max_pool2d(y, 2)[0]

    serial = [work(j) for j in jobs]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        for got, want in zip(pool.map(work, jobs), serial):
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)


def test_threading_layer_is_thread_safe():
    import numba

    fc.relu(np.ones(4))
    assert numba.threading_layer() in ("omp", "tbb")


# ---------------------------------------------------------------- files

SAVER = """
import sys, numpy as np
import fastconv.checkpoint as ckpt
from fastconv.models import lenet5
from fastconv.optim import Adam
m = lenet5(); o = Adam(m.parameters())
print("ready", flush=True)
i = 0
while True:
    i += 1
    ckpt.save(sys.argv[1], m, o, {"i": i})
"""


def test_killing_a_process_mid_save_never_damages_the_checkpoint(tmp_path):
    path = tmp_path / "c.npz"
    ckpt.save(path, lenet5(), position={"i": 0})
    rng = np.random.default_rng(0)
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.02, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        back = ckpt.load(path)  # intact: the old file or a complete new one
        assert isinstance(back.position["i"], int)


def test_unwritable_numba_cache_does_not_crash(tmp_path):
    code = ("import warnings, numpy as np, fastconv as fc;"
            "print(fc.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2))).sum())")
    env = dict(os.environ, NUMBA_CACHE_DIR="/proc/fastconv-cannot-write-here")
    env.pop("FASTCONV_NO_CACHE", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "36.0"


def test_no_cache_location_at_all_falls_back_to_compiling(monkeypatch):
    """A read-only install with an unwritable home: Numba finds no cache locator and refuses cache=True."""
    from numba.core import caching

    from fastconv.kernels import config

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    monkeypatch.setattr(config, "_warned", [])
    with pytest.warns(RuntimeWarning, match="no writable Numba cache directory"):
        kernel = config.cpu_kernel(lambda a: a.sum())
    assert kernel(np.arange(4.0)) == 6.0


# ---------------------------------------------------------------- long runs


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_memory_stays_flat_over_thousands_of_steps():
    nn.manual_seed(0)
    model = lenet5().set_input_grad(False)
    opt, crit = fc_optim_adam(model), nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 8)

    def steps(n):
        for _ in range(n):
            model.zero_grad()
            crit(model(x), y)
            model.backward(crit.backward())
            opt.step()

    steps(300)
    before = _rss_mb()
    steps(3000)
    grown = _rss_mb() - before
    assert grown < 20, f"resident memory grew by {grown:.1f} MB over 3000 steps"


def fc_optim_adam(model):
    from fastconv.optim import Adam

    return Adam(model.parameters(), 1e-4)


@pytest.mark.skipif(os.environ.get("FASTCONV_BIG_TESTS") != "1", reason="needs ~16 GB: set FASTCONV_BIG_TESTS=1")
def test_flat_indices_past_2_31():
    """A plane of more than 2**31 pixels: the winners' flat indices h*W + w need 64 bits."""
    H, W = 46340, 46345  # H*W = 2_147_627_300 > 2**31
    h, w = H - 1, W - 2
    x = np.zeros((1, 1, H, W), np.float32)
    x[0, 0, h, w] = 1.0
    y, idx = fc.max_pool2d(x, 2)
    flat = h * W + w
    assert flat > 2**31 and idx.dtype == np.int64 and idx[0, 0, h // 2, w // 2] == flat and y[0, 0, h // 2, w // 2] == 1
    corner = idx[:, :, -1:, -1:].copy()
    del x, y, idx
    dx = fc.max_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), corner, (1, 1, H, W))
    assert dx[0, 0, h, w] == 1.0 and dx.sum() == 1.0
