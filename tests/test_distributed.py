"""Data-parallel training over MPI: the same training as one process, the CLI on 2 ranks, faults and Ctrl-C.
The MPI runs are child processes under the virtual environment's mpiexec (the mpich wheel), each bounded by a
timeout; skipped where mpi4py is missing."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def test_importing_fastconv_never_imports_mpi4py(tmp_path):
    code = "import sys, fastconv, fastconv.train, fastconv.cli, fastconv.distributed; print('mpi4py' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_distributed_without_mpi4py_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None; from fastconv.cli import main; "
            f"sys.exit(main(['train', '--distributed', '--epochs', '1', '--out', r'{tmp_path}']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "pip install 'fastconv[mpi]'" in r.stderr, r.stderr


pytest.importorskip("mpi4py", reason="mpi4py not installed (pip install 'fastconv[mpi]')")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
if MPIEXEC is None:
    pytest.skip("no mpiexec (the mpich wheel brings one: pip install 'fastconv[mpi]')", allow_module_level=True)
FASTCONV = str(Path(sys.executable).parent / "fastconv")


def _mpiexec(n, *args, timeout=300, **kw):
    env = dict(os.environ, PYTHONPATH=str(HERE))
    return subprocess.run([MPIEXEC, "-n", str(n), *args], capture_output=True, text=True, timeout=timeout, env=env, **kw)


def test_two_ranks_train_as_one_process(tmp_path):
    """LeNet-5 and a residual network with BatchNorm, float64: every parameter and buffer after three SGD
    steps on 2 ranks (global batch 8) equals the one-process result to 1e-10."""
    import mpi_steps

    r = _mpiexec(2, sys.executable, str(HERE / "mpi_steps.py"), str(tmp_path / "two.npz"))
    assert r.returncode == 0, r.stderr[-3000:]
    two = np.load(tmp_path / "two.npz")
    for name in mpi_steps.MODELS:
        one = mpi_steps.run(name)
        for k, v in one.items():
            np.testing.assert_allclose(two[f"{name}/{k}"], v, rtol=1e-10, atol=1e-13, err_msg=f"{name} {k}")


@pytest.fixture(scope="module")
def digits_idx(tmp_path_factory):
    """The bundled digits as an IDX folder (what --data takes)."""
    from fastconv import data
    from test_data import write_idx

    d = tmp_path_factory.mktemp("idx")
    s = data.load_digits()
    write_idx(d / "train-images-idx3-ubyte", s.x_train)
    write_idx(d / "train-labels-idx1-ubyte", s.y_train.astype(np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte", s.x_test)
    write_idx(d / "t10k-labels-idx1-ubyte", s.y_test.astype(np.uint8))
    return d


def _accuracy(stdout):
    return float(stdout.strip().splitlines()[-1].split()[-1].rstrip("%"))


def test_cli_on_two_ranks_reaches_the_one_process_accuracy(tmp_path, digits_idx):
    args = ["train", "--data", str(digits_idx), "--epochs", "6", "--no-progress"]
    one = subprocess.run([FASTCONV, *args, "--out", str(tmp_path / "one")], capture_output=True, text=True, timeout=300)
    two = _mpiexec(2, FASTCONV, *args, "--distributed", "--out", str(tmp_path / "two"))
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("epoch ") == 6  # rank 0 alone prints
    assert abs(_accuracy(one.stdout) - _accuracy(two.stdout)) <= 0.5, (one.stdout[-300:], two.stdout[-300:])
    assert (tmp_path / "two" / "best.npz").exists() and (tmp_path / "two" / "metrics.json").exists()


def test_batch_not_divisible_by_the_ranks_is_named(tmp_path, digits_idx):
    r = _mpiexec(2, FASTCONV, "train", "--data", str(digits_idx), "--batch-size", "63", "--distributed", "--epochs", "1",
                 "--out", str(tmp_path), timeout=120)
    assert r.returncode != 0 and "batch_size 63" in r.stderr and "2 ranks" in r.stderr


def test_a_failing_rank_ends_the_job_and_keeps_the_last_checkpoint(tmp_path, digits_idx):
    """Rank 1 raises in its second evaluation: the job exits non-zero in bounded time, the error names the
    rank, and the checkpoint of epoch 1 stays loadable."""
    script = tmp_path / "fault.py"
    script.write_text(
        "import sys\n"
        "import fastconv.train as T\n"
        "from fastconv import distributed\n"
        "real, calls = T.evaluate, []\n"
        "def evaluate(*a, **k):\n"
        "    calls.append(1)\n"
        "    if distributed.rank() == 1 and len(calls) == 2:\n"
        "        raise RuntimeError('injected failure')\n"
        "    return real(*a, **k)\n"
        "T.evaluate = evaluate\n"
        "from fastconv.cli import main\n"
        f"sys.exit(main(['train', '--data', r'{digits_idx}', '--epochs', '4', '--distributed', '--no-progress', "
        f"'--out', r'{tmp_path / 'run'}']))\n")
    t = time.monotonic()
    r = _mpiexec(2, sys.executable, str(script), timeout=240)
    assert r.returncode != 0 and time.monotonic() - t < 240
    assert "rank 1 of 2" in r.stderr and "injected failure" in r.stderr, r.stderr[-2000:]
    from fastconv import checkpoint

    assert checkpoint.load(tmp_path / "run" / "last.npz").position["epoch"] == 1


def test_ctrl_c_saves_a_checkpoint_that_resumes_on_another_number_of_ranks(tmp_path, digits_idx):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([MPIEXEC, "-n", "2", FASTCONV, "train", "--data", str(digits_idx), "--epochs", "30", "--distributed",
                          "--no-progress", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    line = ""
    while "epoch" not in line and time.monotonic() < deadline:  # wait for the first epoch, then Ctrl-C
        line = p.stdout.readline()
    p.send_signal(signal.SIGINT)
    try:
        rest, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    assert p.returncode == 130, err[-2000:]
    assert "resume with" in rest
    r = subprocess.run([FASTCONV, "train", "--resume", str(out / "last.npz"), "--epochs", "2", "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "resuming from" in r.stdout, r.stderr[-2000:]
