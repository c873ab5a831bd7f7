"""The package imports from outside the source tree, with its kernels as fastconv.kernels."""
import subprocess
import sys
from pathlib import Path

import pytest

import fastconv

ROOT = Path(__file__).resolve().parents[1]


def test_import_from_outside_the_source_tree(tmp_path):
    code = (
        "import fastconv, fastconv.kernels.cpu as k, numpy as np;"
        "print(fastconv.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))).sum());"
        "print(sorted(fastconv.__all__)[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["16.0", "avg_pool2d"]


def test_kernels_do_not_claim_a_top_level_name(tmp_path):
    code = "import importlib.util; print(importlib.util.find_spec('kernels') is None)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_functional_api_is_re_exported():
    from fastconv import functional

    for name in functional.__all__:
        assert getattr(fastconv, name) is getattr(functional, name)


def test_every_subpackage_is_listed_for_the_wheel():
    """pyproject.toml lists packages by hand (kernels/ is mapped to fastconv.kernels): none may be missing."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"fastconv." + str(p.parent.relative_to(ROOT / "fastconv")).replace("/", ".") for p in (ROOT / "fastconv").rglob("__init__.py")}
    found |= {"fastconv." + str(p.parent.relative_to(ROOT)).replace("/", ".") for p in (ROOT / "kernels").rglob("__init__.py")}
    found = {f.replace("fastconv..", "fastconv.").rstrip(".") for f in found}
    assert found <= listed, found - listed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_reuse_freed_memory_is_applied_in_a_fresh_process(tmp_path):
    code = "import fastconv; print(fastconv.reuse_freed_memory(), fastconv.reuse_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
