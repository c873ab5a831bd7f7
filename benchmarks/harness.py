"""``fastconv bench``: time every kernel and the LeNet-5 step against the peers, side by side in one process,
and write the table as text, JSON and markdown.

Times are medians of repeated calls after warm-up calls (so JIT compilation is never timed). The engines of one
case are timed interleaved: ROUNDS rounds, each timing a slice of calls of every engine in turn (after a
pause that lets the previous engine's threads go idle), and each engine's time is the median over the rounds
of its mean per call in a slice; so a burst of load on this shared machine lands on all engines alike instead
of on whichever was being timed. GFLOP/s counts
2*N*K*P*Q*C*R*S for each conv pass. "x SGEMM" is the fraction of numpy's SGEMM rate measured in the same run
with the same thread count; "vs PEER" is the peer's median time divided by fastconv's (above 1: fastconv is
faster).
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..kernels.cpu import wisdom
from . import cases, peers


def median_ms(fn, min_time=0.5, min_reps=5, max_reps=200, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


ROUNDS = 5
SETTLE_S = 0.25


def interleaved_ms(fns, min_time=0.5, rounds=ROUNDS, warmup=2, settle=SETTLE_S):
    """{name: median ms per call} for the functions of ``fns`` ({name: fn}); see ``interleaved``."""
    return {name: t[0] for name, t in interleaved(fns, min_time, rounds, warmup, settle).items()}


def interleaved(fns, min_time=0.5, rounds=ROUNDS, warmup=2, settle=SETTLE_S):
    """{name: (median, min, max) ms per call over the rounds} for the functions of ``fns`` ({name: fn}), timed
    side by side: in each of
    ``rounds`` rounds every function runs a slice of about min_time / rounds seconds (at least one call),
    one after the other; a function's figure is the median over the rounds of its mean time per call.

    Before each slice the machine is left idle for ``settle`` seconds, because an engine's worker threads
    stay busy for a while after its last call returns (OpenBLAS's spin: timed straight after the BLAS peer,
    PyTorch's LeNet C2 forward took 0.42 ms instead of 0.12)."""
    calls = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        t = time.perf_counter()
        fn()
        calls[name] = max(1, int(min_time / rounds / max(time.perf_counter() - t, 1e-7)))
    per_call = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(settle)
            t = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            per_call[name].append((time.perf_counter() - t) / calls[name])
    return {name: tuple(1000 * float(f(v)) for f in (np.median, np.min, np.max)) for name, v in per_call.items()}


def sgemm_gflops(n=2048, min_time=1.0):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    return 2 * n**3 / (median_ms(lambda: a @ b, min_time) / 1000) / 1e9


def blas_info():
    """Which BLAS library and kernel numpy used, and the OpenBLAS variables that steer it."""
    info = {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"), "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            if lib.get("user_api") == "blas":
                info.update(library=lib.get("internal_api"), version=lib.get("version"),
                            kernel=lib.get("architecture"), threads=lib.get("num_threads"))
                break
    except ImportError:
        info["library"] = "unknown (install threadpoolctl)"
    return info


def model_throughput(batch, train, engine, min_time, model="lenet5"):
    """Images per second of a training step (Adam) or an inference pass of a model, fastconv or torch."""
    return batch / (median_ms(model_call(model, batch, train, engine), min_time) / 1000)


INPUTS = {"lenet5": (1, 28, 28), "resnet20": (3, 32, 32)}


def model_call(name, batch, train, engine):
    """A function that runs one training step (Adam) or one inference pass of LeNet-5 or ResNet-20, fastconv or
    torch, as a user writes it (``model(x)``, the loss, ``backward``, ``step``; no gradient for the images); or
    an inference pass of the same fastconv network exported to ONNX, in onnxruntime."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *INPUTS[name])).astype(np.float32)
    y = rng.integers(0, 10, batch)
    if engine == "onnxruntime":
        from fastconv import get_num_threads, models, nn

        nn.manual_seed(0)
        return peers.onnxruntime_inference(getattr(models, name)().eval(), x, get_num_threads())
    if engine == "fastconv":
        from fastconv import models, nn, optim

        nn.manual_seed(0)
        model, crit = getattr(models, name)(), nn.CrossEntropyLoss()  # (a network computes no dx for its images)
        opt = optim.Adam(model.parameters())

        def step():
            model.zero_grad()
            crit(model(x), y)
            model.backward(crit.backward())
            opt.step()

        fn = step if train else (lambda: model.eval()(x))
    else:
        import torch

        model = peers.torch_lenet5() if name == "lenet5" else peers.torch_resnet20()
        opt = torch.optim.Adam(model.parameters())
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(tx), ty).backward()
            opt.step()

        def infer():
            with torch.no_grad():
                model.eval()(tx)

        fn = step if train else infer
    return fn


STARTUP = """
import time; t0 = time.perf_counter()
import numpy as np
from fastconv import nn, optim
from fastconv.models import lenet5
model, crit = lenet5(), nn.CrossEntropyLoss()
opt = optim.Adam(model.parameters())
x = np.zeros((64, 1, 28, 28), np.float32)
crit(model(x), np.zeros(64, np.int64)); model.backward(crit.backward()); opt.step()
print(time.perf_counter() - t0)
"""


def startup_seconds():
    """Seconds from a fresh interpreter to its first finished LeNet-5 training step: empty, then warm cache.
    (Interpreter start-up itself, about 0.05 s, is not included.)"""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty_cache", "warm_cache"):
            r = subprocess.run([sys.executable, "-c", STARTUP], env=env, cwd=cache, capture_output=True, text=True,
                               check=True)
            out[label] = float(r.stdout.split()[-1])
    return out


def cpu_model():
    """The CPU's model name and family/model numbers (from /proc/cpuinfo where there is one)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.machine())
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name


def run(quick=False, threads=None, with_torch=True, startup=True, only=None, log=print):
    threads = threads or os.cpu_count()
    limiter = peers.set_threads(threads)
    # the quick mode runs fewer, shorter rounds, with the same pause before every slice: a fair comparison
    # needs each engine's worker threads idle before another engine's slice starts
    min_time = 0.2 if quick else 1.0
    rounds = 3 if quick else ROUNDS
    engines = peers.engines(with_torch)
    names = [e.name for e in engines]
    report = {
        "machine": {"platform": platform.platform(), "processor": cpu_model(),
                    "cpus": os.cpu_count(), "threads": threads, "python": sys.version.split()[0],
                    "numpy": np.__version__, "blas": blas_info(), "kernel_choices": wisdom.describe()},
        "engines": names,
        "sgemm_gflops": sgemm_gflops(1024 if quick else 2048, min_time),
        "kernels": [],
        "models": [],
    }
    try:
        import numba

        report["machine"]["numba"] = numba.__version__
        if "torch" in names:
            import torch

            report["machine"]["torch"] = torch.__version__
    except ImportError:
        pass
    log(f"SGEMM: {report['sgemm_gflops']:.1f} GFLOP/s with {threads} threads ({report['machine']['blas']})")
    work = [(c, p, "conv") for c in cases.CONV for p in cases.CONV_PASSES]
    work += [(c, p, "pool") for c in cases.POOL for p in cases.POOL_PASSES]
    work += [(c, p, "norm") for c in cases.NORM for p in cases.NORM_PASSES]
    if only:
        work = [w for w in work if any(o in w[0].name for o in only)]
    for case, which, kind in work:
        row = {"case": case.name, "pass": which, "shape": str(case)}
        ref, fns = None, {}
        for e in engines:
            fn = getattr(e, kind)(case, which)
            if fn is None:  # an engine without this op
                continue
            fns[e.name] = fn
            result = fn()
            if ref is None:
                ref = result
            else:
                peers.assert_same(result, ref, f"{e.name} {case.name} {which}")
        timed = interleaved(fns, min_time * len(fns), rounds)
        row["ms"] = {n: t[0] for n, t in timed.items()}
        row["range_ms"] = {n: [t[1], t[2]] for n, t in timed.items()}
        ms = row["ms"]["fastconv"]
        if kind == "conv":
            row["gflops"] = case.flops / (ms / 1000) / 1e9
            row["sgemm_fraction"] = row["gflops"] / report["sgemm_gflops"]
        row["ratio"] = {n: row["ms"][n] / ms for n in names[1:] if n in row["ms"]}
        report["kernels"].append(row)
        log(_row_text(row, names))
    model_work = [("lenet5", 64, True), ("lenet5", 256, True), ("lenet5", 256, False), ("resnet20", 64, True),
                  ("resnet20", 64, False)]
    if only:
        model_work = [w for w in model_work if any(o in w[0] for o in only)]
    # the loop as a user writes it: glibc's defaults for every engine (fastconv keeps its large arrays' memory
    # in its own buffer cache; no process-wide allocator setting)
    for name, batch, train in model_work:
        engines = [e for e in names if e != "im2col"] + ([] if train or not peers.onnxruntime_available() else ["onnxruntime"])
        timed = interleaved({e: model_call(name, batch, train, e) for e in engines}, 2 * min_time, rounds)
        row = {"model": name, "batch": batch, "mode": "train step" if train else "inference",
               "images_per_second": {e: batch / (t[0] / 1000) for e, t in timed.items()},
               "range_images_per_second": {e: [batch / (t[2] / 1000), batch / (t[1] / 1000)] for e, t in timed.items()}}
        report["models"].append(row)
        log(f"{name} {row['mode']} batch {batch}: " + ", ".join(f"{k} {v:,.0f} img/s" for k, v in row["images_per_second"].items()))
    if startup:
        report["startup_seconds"] = startup_seconds()
        log(f"first LeNet-5 training step of a fresh process: {report['startup_seconds']}")
    if limiter is not None:
        limiter.restore_original_limits()
    return report


def _spread(row, name):
    """The rounds' min-max of an engine's time, as a fraction of its median: +-x%."""
    lo, hi = row["range_ms"][name]
    return f"{100 * (hi - lo) / 2 / row['ms'][name]:.0f}%"


def _ratio(row, n):
    """Median ratio against engine n, with the range over the rounds' extremes (n's fastest over fastconv's
    slowest to n's slowest over fastconv's fastest)."""
    if n not in row["ratio"]:
        return "-"
    (flo, fhi), (nlo, nhi) = row["range_ms"]["fastconv"], row["range_ms"][n]
    return f"{row['ratio'][n]:.2f} ({nlo / fhi:.2f}-{nhi / flo:.2f})"


def _row_text(row, names):
    g = f"{row['gflops']:7.1f}" if "gflops" in row else "      -"
    f = f"{row['sgemm_fraction']:6.2f}" if "sgemm_fraction" in row else "     -"
    ratios = "  ".join(f"{_ratio(row, n):>17s}" for n in names[1:])
    return f"{row['case']:12s} {row['pass']:13s} {row['ms']['fastconv']:9.3f} {_spread(row, 'fastconv'):>5s} {g} {f}  {ratios}"


def markdown(report):
    names = report["engines"]
    m = report["machine"]
    lines = [
        f"Machine: {m['processor']}, {m['cpus']} CPUs, {m['threads']} threads for every engine; Python {m['python']}, "
        f"numpy {m['numpy']}, numba {m.get('numba')}" + (f", torch {m['torch']}" if "torch" in m else "") + ".",
        f"BLAS: {m['blas']}. numpy SGEMM: **{report['sgemm_gflops']:.1f} GFLOP/s**. fastconv's kernel choices: "
        f"{m.get('kernel_choices', 'the built-in rules')}.",
        "",
        "| case | pass | fastconv ms | ± | GFLOP/s | x SGEMM | " + " | ".join(f"vs {n} (range)" for n in names[1:]) + " |",
        "| --- | --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in names[1:]) + " |",
    ]
    for r in report["kernels"]:
        g = f"{r['gflops']:.1f}" if "gflops" in r else "-"
        f = f"{r['sgemm_fraction']:.2f}" if "sgemm_fraction" in r else "-"
        lines.append(f"| {r['case']} | {r['pass']} | {r['ms']['fastconv']:.3f} | {_spread(r, 'fastconv')} | {g} | {f} | "
                     + " | ".join(_ratio(r, n) for n in names[1:]) + " |")
    columns = list(dict.fromkeys(e for r in report["models"] for e in r["images_per_second"]))
    lines += ["", "| model | pass | batch | " + " | ".join(f"{n} img/s (range)" for n in columns) + " |",
              "| --- | --- | ---: | " + " | ".join("---:" for _ in columns) + " |"]
    for r in report["models"]:
        ips, lo_hi = r["images_per_second"], r["range_images_per_second"]
        lines.append(f"| {r['model']} | {r['mode']} | {r['batch']} | " + " | ".join(
            f"{ips[e]:,.0f} ({lo_hi[e][0]:,.0f}-{lo_hi[e][1]:,.0f})" if e in ips else "-" for e in columns) + " |")
    if "heap" in report:
        lines += ["", f"Heap: {report['heap']}."]
    if "startup_seconds" in report:
        s = report["startup_seconds"]
        lines += ["", f"First LeNet-5 training step of a fresh process: {s['empty_cache']:.1f} s with an empty Numba "
                      f"cache, {s['warm_cache']:.2f} s with a warm one."]
    return "\n".join(lines) + "\n"


def main(quick=False, threads=None, out="bench", with_torch=True, startup=True, only=None):
    names = ["fastconv"] + [e.name for e in peers.engines(with_torch)][1:]
    print(f"{'case':12s} {'pass':13s} {'ms':>9s} {'GFLOP/s':>7s} {'xSGEMM':>6s}  " + "  ".join(f"{'vs ' + n:>6s}" for n in names[1:]))
    report = run(quick, threads, with_torch, startup, only)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    (out / "bench.md").write_text(markdown(report))
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return report
