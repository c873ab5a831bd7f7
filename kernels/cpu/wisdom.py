"""Measured kernel choices ("wisdom", as FFTW calls it): for a layer shape, which of the candidate kernels was
fastest on this machine, kept in a JSON file and reused by later processes.

A choice is keyed by the machine (CPU model, its LLVM name and features, the numba and llvmlite versions)
and by the op and its shape class (batch rounded up to a power of two, channels, image and kernel sizes,
stride, padding, dilation, itemsize, threads). Without an entry the plan's built-in rule decides.
``fastconv.tuning`` measures and writes entries; this module only reads them, once per process, and answers
lookups from a dict.
"""
import hashlib
import json
import os
import platform
from pathlib import Path

# op -> the kernels it may choose between (the first is never a worse default than the built-in rule)
CANDIDATES = {"forward": ("phased", "unfolded"), "forward_strided": ("phased", "broadcast"),
              "weight_grad": ("broadcast", "dot"), "input_grad": ("phased", "unfolded")}
MAX_FILE_BYTES = 1 << 22  # a wisdom file larger than 4 MiB is ignored

_table = None  # shape key -> kernel, for this machine, loaded on first use
forced = None  # kernel forced for every lookup while a tuner times it
recording = None  # a list of (op, key, re-run) while a tuner collects the calls of a model's pass


def path():
    """``$FASTCONV_WISDOM``, else ``$XDG_CACHE_HOME/fastconv/wisdom.json`` (``~/.cache`` by default)."""
    if os.environ.get("FASTCONV_WISDOM"):
        return Path(os.environ["FASTCONV_WISDOM"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastconv" / "wisdom.json"


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key():
    """What a measurement is valid for: the CPU, what LLVM compiles for, and the compiler's versions."""
    import llvmlite
    import numba
    from llvmlite import binding as llvm

    from numba.core.registry import cpu_target

    # the features Numba's code generator compiles for (those of the host, with the vector-width setting of
    # ``config.apply_vector_width``)
    codegen = cpu_target.target_context.codegen()
    features = getattr(codegen, "_tm_features", None) or llvm.get_host_cpu_features().flatten()
    digest = hashlib.sha256(features.encode()).hexdigest()[:12]
    return (f"{_cpu_model()} | {numba.config.CPU_NAME or llvm.get_host_cpu_name()} features {digest} | "
            f"numba {numba.__version__} llvmlite {llvmlite.__version__}")


def shape_key(op, x_shape, w_shape, stride, padding, dilation, itemsize, threads):
    n = 1 << max(0, int(x_shape[0]) - 1).bit_length()  # batch rounded up to a power of two
    return f"{op} n{n} x{tuple(x_shape[1:])} w{tuple(w_shape)} s{tuple(stride)} p{tuple(padding)} " \
           f"d{tuple(dilation)} b{itemsize} t{threads}"


def read_file(p=None):
    """The whole file as {machine key: {shape key: kernel}}; {} for a missing, oversized or damaged file."""
    p = path() if p is None else Path(p)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            return {}
        data = json.loads(p.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {m: t for m, t in data.items() if isinstance(m, str) and isinstance(t, dict)}


def table():
    global _table
    if _table is None:
        entries = read_file().get(machine_key(), {})
        _table = {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, str)}
    return _table


def reload():
    """Forget the loaded table (the next lookup reads the file again)."""
    global _table
    _table = None


def choice(op, key, default):
    """The measured kernel for ``key``, or ``default``; a forced kernel while a tuner is timing."""
    if forced is not None and forced in CANDIDATES[op]:
        return forced
    k = table().get(key)
    return k if k in CANDIDATES[op] else default


def choose(op, default, shape, rerun):
    """What the plan asks for each call: ``default`` (the built-in rule) unless this machine has measured
    choices, a tuner forces a kernel or records the calls; only then is the shape key (the arguments of
    ``shape_key`` after ``op``) built, and the call recorded with ``rerun`` (which runs it again)."""
    if recording is None and forced is None and not table():
        return default
    key = shape_key(op, *shape)
    if recording is not None:
        recording.append((op, key, rerun))
    return choice(op, key, default)


def describe():
    """Which rules decide on this machine, in words (for `fastconv info` and the bench report)."""
    n = len(table())
    return f"{n} measured by `fastconv tune` ({path()})" if n else f"the built-in rules (no entries in {path()})"
