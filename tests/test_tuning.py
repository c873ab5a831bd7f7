"""Kernel choice by measurement: every candidate kernel is exact on any shape it may be given, a tuning run
stores its choices per machine, later processes use them, and a damaged wisdom file is ignored."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import reference as ref

import fastconv as fc
import fastconv.nn as nn
from fastconv import tuning
from fastconv.kernels.cpu import wisdom


@pytest.fixture
def wisdom_file(tmp_path, monkeypatch):
    p = tmp_path / "wisdom.json"
    monkeypatch.setenv("FASTCONV_WISDOM", str(p))
    wisdom.reload()
    yield p
    wisdom.reload()


SHAPES = [  # (x shape, w shape, stride, padding, dilation, groups): wide and short rows, strided, dilated, few
    ((3, 5, 11, 13), (7, 5, 3, 3), 1, 1, 1, 1),  # channels, grouped (the unfolded and broadcast kernels read and
    ((2, 3, 9, 30), (40, 3, 3, 5), 1, (2, 1), (1, 2), 1),  # write each group's channels in place, the others
    ((4, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1, 1),  # copy them)
    ((2, 4, 12, 11), (9, 4, 3, 3), 2, 1, 1, 1),
    ((2, 8, 10, 10), (33, 8, 1, 1), (2, 3), 0, 1, 1),
    ((2, 7, 9, 12), (6, 7, 3, 3), 1, (3, 1), 1, 1),  # padding wider than the kernel on one axis
    ((3, 12, 9, 10), (15, 4, 3, 3), 1, 1, 1, 3),
    ((2, 8, 7, 11), (12, 4, 3, 2), 1, (2, 1), (1, 2), 2),
]


def _shape_id(s):
    return "x".join(map(str, s[0])) + "-w" + "x".join(map(str, s[1])) + (f"-g{s[5]}" if s[5] > 1 else "")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_every_candidate_kernel_is_exact_where_it_may_be_chosen(shape, dtype, monkeypatch):
    x_shape, w_shape, stride, padding, dilation, groups = shape
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, w_shape[:1]))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    want = ref.conv2d(x, w, b, **kw)
    dy = rng.standard_normal(want.shape).astype(dtype)
    want_dw = ref.conv2d_backward_weight(dy, x, w.shape, **kw)
    want_dx = ref.conv2d_backward_input(dy, w, x.shape, **kw)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for kernel in {k for ks in wisdom.CANDIDATES.values() for k in ks}:
        monkeypatch.setattr(wisdom, "forced", kernel)
        np.testing.assert_allclose(fc.conv2d(x, w, b, **kw), want, **tol, err_msg=kernel)
        np.testing.assert_allclose(fc.conv2d_backward_weight(dy, x, w.shape, **kw), want_dw, **tol, err_msg=kernel)
        np.testing.assert_allclose(fc.conv2d_backward_input(dy, w, x.shape, **kw), want_dx, **tol, err_msg=kernel)


def test_a_dot_choice_still_refuses_non_finite_inputs(monkeypatch):
    """Forced to the dot-product dW, an Inf input still takes the kernel that propagates it as the maths says."""
    monkeypatch.setattr(wisdom, "forced", "dot")
    x = np.ones((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = np.inf
    dw = fc.conv2d_backward_weight(np.ones((1, 2, 5, 5), np.float32), x, (2, 1, 3, 3), padding=1)
    np.testing.assert_array_equal(dw, ref.conv2d_backward_weight(np.ones((1, 2, 5, 5)), x.astype(np.float64),
                                                                 (2, 1, 3, 3), padding=1))


def _net():
    return nn.Sequential(nn.Conv2D(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2D(16, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2D(16, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 4))


def test_tuning_stores_choices_that_this_and_later_processes_use(wisdom_file, tmp_path):
    results = tuning.tune(_net(), (4, 3, 16, 16), min_time=0.01)
    assert {key.split()[0] for key, _, _ in results} == {"forward", "forward_strided", "weight_grad", "input_grad"}
    for key, ms, chosen in results:
        op = key.split()[0]
        assert set(ms) == set(wisdom.CANDIDATES[op]) and all(v > 0 for v in ms.values())
        assert chosen is None or ms[chosen] * tuning.MARGIN <= min(v for k, v in ms.items() if k != chosen)
    stored = json.loads(wisdom_file.read_text())[wisdom.machine_key()]
    assert stored == {key: chosen for key, _, chosen in results if chosen is not None}
    # write a choice for every shape by hand (the measured ones may all be ties): the plan obeys it
    forced = {key: wisdom.CANDIDATES[key.split()[0]][1] for key, _, _ in results}
    wisdom_file.write_text(json.dumps({wisdom.machine_key(): forced, "another machine": {"x": "y"}}))
    wisdom.reload()
    assert wisdom.table() == forced
    code = ("from fastconv.kernels.cpu import wisdom; import json; print(json.dumps(wisdom.table()))")
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, FASTCONV_WISDOM=str(wisdom_file)),
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert json.loads(r.stdout) == forced, r.stderr[-2000:]
    tuning.forget()
    assert json.loads(wisdom_file.read_text()) == {"another machine": {"x": "y"}} and wisdom.table() == {}


def test_a_damaged_or_foreign_wisdom_file_leaves_the_built_in_rules(wisdom_file):
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = np.random.default_rng(2).standard_normal((4, 3, 3, 3)).astype(np.float32)
    want = ref.conv2d(x, w, padding=1)
    for content in ("{not json", "[1, 2]", "[" * 100000 + "]" * 100000, json.dumps({wisdom.machine_key(): {"a": 3}}),
                    json.dumps({wisdom.machine_key(): {"any key": "no such kernel"}}), " " * (wisdom.MAX_FILE_BYTES + 1)):
        wisdom_file.write_text(content)
        wisdom.reload()
        assert wisdom.choice("forward", "any key", "phased") == "phased"
        np.testing.assert_allclose(fc.conv2d(x, w, padding=1), want, rtol=1e-4, atol=1e-4)


def test_cli_tune_writes_and_forgets(wisdom_file, capsys):
    from fastconv import cli

    assert cli.main(["tune", "--model", "lenet5", "--batch-size", "4", "--inference"]) == 0
    out = capsys.readouterr().out
    assert out.count("forward n4 ") == 2 and f"wrote {wisdom_file}" in out
    assert wisdom.machine_key() in json.loads(wisdom_file.read_text())
    assert cli.main(["tune", "--forget"]) == 0
    assert wisdom.machine_key() not in json.loads(wisdom_file.read_text())
    assert cli.main(["tune", "--model", "vgg"]) == 2


def _avx512_host():
    from llvmlite import binding as llvm

    return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")


CHOSEN_TARGET = bool(os.environ.get("NUMBA_CPU_NAME") or os.environ.get("NUMBA_CPU_FEATURES"))


@pytest.mark.skipif(not _avx512_host() or CHOSEN_TARGET, reason="needs an AVX-512 CPU and Numba's default target")
def test_products_use_512_bit_vectors():
    """On an AVX-512 CPU, code compiled after fastconv's import vectorises on 512-bit registers (LLVM prefers
    256-bit ones on Intel's AVX-512 CPUs unless told otherwise; the 8 x 32 block assumes 16-lane vectors).
    (Checked on a fresh loop: Numba does not disassemble kernels loaded from its cache.)"""
    import numba

    @numba.njit(fastmath=True)
    def axpy(a, x, y):
        for i in range(x.size):
            y[i] += a * x[i]

    x = np.arange(1000, dtype=np.float32)
    y = np.ones(1000, np.float32)
    axpy(np.float32(2), x, y)
    np.testing.assert_array_equal(y, 1 + 2 * x)
    fmas = [ln for ln in axpy.inspect_asm(axpy.signatures[0]).splitlines() if "vfmadd" in ln]
    packed = [ln for ln in fmas if "ps\t" in ln]
    assert sum("zmm" in ln for ln in packed) >= max(1, sum("ymm" in ln for ln in packed)), packed


def _run(code, cwd, **env):
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, FASTCONV_NO_CACHE="1", **env), cwd=cwd,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip()


FEATURES = """
import warnings
from numba.core.registry import cpu_target
{before}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastconv
print(cpu_target.target_context.codegen()._tm_features.endswith("-prefer-256-bit"),
      any("vector width" in str(w.message) for w in caught))
"""


@pytest.mark.skipif(not _avx512_host() or CHOSEN_TARGET, reason="needs an AVX-512 CPU and Numba's default target")
def test_vector_width_setting_respects_the_user(tmp_path):
    """The setting is made when fastconv is imported first; Numba code compiled earlier keeps Numba's default
    (with a warning, except on AMD's Zen, where the default is already 512-bit); a user's NUMBA_CPU_FEATURES
    is left as it is."""
    from llvmlite import binding as llvm

    assert _run(FEATURES.format(before=""), tmp_path) == "True False"
    compiled_first = "import numba\nnumba.njit(lambda a: a + 1)(1)"
    zen = llvm.get_host_cpu_name().startswith("znver")
    assert _run(FEATURES.format(before=compiled_first), tmp_path) == f"False {not zen}"
    host = llvm.get_host_cpu_features().flatten()
    assert _run(FEATURES.format(before=""), tmp_path, NUMBA_CPU_FEATURES=host) == "False False"
