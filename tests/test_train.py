"""Training: accuracy on the bundled digits, exact resumption, the CLI commands and their files."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from fastconv import checkpoint, data
from fastconv import train as T
from fastconv.cli import main
from test_data import write_idx


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


@pytest.fixture(scope="module")
def small(digits):
    """A 640/200 subset of the bundled digits, for quick runs."""
    return data.Split(digits.x_train[::6][:640], digits.y_train[::6][:640], digits.x_test[::5], digits.y_test[::5], "small")


def test_short_run_reaches_90_percent(tmp_path, digits):
    cfg = T.TrainConfig(epochs=4, batch_size=64, out=str(tmp_path), progress=False)  # 252 steps
    r = T.train(cfg, split=digits, log=lambda *a: None)
    assert r.test_accuracy >= 0.90, r.epochs
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert rows[-1]["test_accuracy"] == r.test_accuracy
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")
    from PIL import Image

    with Image.open(tmp_path / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 200
    best = checkpoint.load(tmp_path / "best.npz")
    _, acc, _ = T.evaluate(best.model, digits.x_test, digits.y_test)
    assert acc == pytest.approx(r.best_accuracy)


def test_resume_matches_an_uninterrupted_run(tmp_path, small, monkeypatch):
    cfg = dict(epochs=2, batch_size=32, progress=False)
    full = T.train(T.TrainConfig(out=str(tmp_path / "full"), **cfg), split=small, log=lambda *a: None)

    original = T.batch_rng

    def interrupt_mid_epoch(seed, epoch, batch):  # Ctrl-C arrives during epoch 1, batch 7
        if (epoch, batch) == (0, 7):
            signal.raise_signal(signal.SIGINT)
        return original(seed, epoch, batch)

    monkeypatch.setattr(T, "batch_rng", interrupt_mid_epoch)
    part = T.train(T.TrainConfig(out=str(tmp_path / "part"), **cfg), split=small, log=lambda *a: None)
    assert part.interrupted and checkpoint.load(tmp_path / "part" / "last.npz").position["batch"] == 8
    monkeypatch.setattr(T, "batch_rng", original)
    resumed = T.train(T.TrainConfig(out=str(tmp_path / "part"), resume=str(tmp_path / "part" / "last.npz"), **cfg),
                      split=small, log=lambda *a: None)
    a = checkpoint.load(tmp_path / "full" / "last.npz").model.state_dict()
    b = checkpoint.load(tmp_path / "part" / "last.npz").model.state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert resumed.test_accuracy == full.test_accuracy


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="schedule"):
        T.TrainConfig(schedule="zigzag").check()
    with pytest.raises(ValueError, match="epochs"):
        T.TrainConfig(epochs=0).check()


def test_lr_schedules():
    cfg = T.TrainConfig(lr=1.0)
    lrs = [T.lr_at(cfg, s, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(1 / 25) and max(lrs) == pytest.approx(1.0, rel=1e-3)
    assert np.argmax(lrs) == pytest.approx(30, abs=1) and lrs[-1] == pytest.approx(1 / 25 / 1e4)


def test_shift_moves_images_by_whole_pixels():
    img = np.zeros((50, 28, 28), np.uint8)
    img[:, 14, 14] = 255
    out = T.shift(img, np.random.default_rng(0), 2)
    pos = np.argwhere(out == 255)
    assert len(pos) == 50 and np.abs(pos[:, 1:] - 14).max() == 2
    assert len({tuple(p[1:]) for p in pos}) > 10


def _idx_dir(d, split):
    d.mkdir()
    write_idx(d / "train-images-idx3-ubyte", split.x_train)
    write_idx(d / "train-labels-idx1-ubyte", split.y_train)
    write_idx(d / "t10k-images-idx3-ubyte.gz", split.x_test, gz=True)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", split.y_test, gz=True)
    return d


def test_cli_train_evaluate_predict_info(tmp_path, small, capsys):
    mnist = _idx_dir(tmp_path / "idx", small)
    out = tmp_path / "run"
    assert main(["train", "--data", str(mnist), "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "test accuracy: " in text.splitlines()[-1]
    assert main(["evaluate", str(out / "best.npz"), "--data", str(mnist)]) == 0
    text = capsys.readouterr().out
    assert "confusion matrix" in text and text.strip().endswith("%")
    matrix = [list(map(int, line.split()[1:])) for line in text.splitlines()[3:13]]
    assert sum(map(sum, matrix)) == len(small.y_test)
    np.save(tmp_path / "digit.npy", small.x_test[0])
    assert main(["predict", str(out / "best.npz"), str(tmp_path / "digit.npy")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'digit.npy'}: ") and "probability" in line
    assert main(["predict", str(out / "best.npz"), str(tmp_path / "missing.png")]) == 1
    # one unreadable image among good ones: the good ones are classified, the exit status says one failed
    assert main(["predict", str(out / "best.npz"), str(tmp_path / "digit.npy"), str(tmp_path / "missing.png")]) == 1
    assert capsys.readouterr().out.count("probability") == 1
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "threading layer" in text and "numba" in text and "cuda" in text
    assert main(["evaluate", str(tmp_path / "digit.npy")]) == 2  # not a checkpoint: a clear error, no traceback
    assert "error" in capsys.readouterr().err


def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path, small):
    """A real SIGINT to a running `fastconv train`: it saves last.npz and exits with 130."""
    mnist = _idx_dir(tmp_path / "idx", small)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "fastconv", "train", "--data", str(mnist), "--epochs", "200", "--out", str(out),
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    seen = []
    for line in proc.stdout:  # wait until an epoch has finished
        seen.append(line)
        if line.startswith("epoch"):
            break
    proc.send_signal(signal.SIGINT)
    rest = "".join(seen) + proc.stdout.read()
    assert proc.wait(timeout=120) == 130, rest
    assert "interrupted: saved a resumable checkpoint" in rest
    pos = checkpoint.load(out / "last.npz").position
    assert pos["epoch"] >= 1 and pos["config"]["epochs"] == 200
    # the CLI resumes with the run's own settings (data, out, ...); --epochs given now overrides the stored 200
    assert main(["train", "--resume", str(out / "last.npz"), "--epochs", str(pos["epoch"] + 1), "--no-progress"]) == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == list(range(1, pos["epoch"] + 2))


def test_cli_bench_writes_its_table(tmp_path, capsys):
    assert main(["bench", "--quick", "--no-startup", "--cases", "lenet_c2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert {r["pass"] for r in report["kernels"]} == {"forward", "dx", "dw"}
    assert report["sgemm_gflops"] > 0 and all(r["gflops"] > 0 for r in report["kernels"])
    assert "im2col" in report["engines"] and all("im2col" in r["ratio"] for r in report["kernels"])
    md = (tmp_path / "bench.md").read_text()
    assert "| lenet_c2 | forward |" in md and "SGEMM" in md


def test_first_run_notice_only_when_the_kernels_are_not_cached(tmp_path):
    """With an empty kernel cache a fresh process reports that it will compile; with this process's cache
    (whose kernels have run) it does not."""
    from fastconv import firstrun

    code = "from fastconv import firstrun; print(firstrun.kernels_cached())"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty-cache"))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
    import fastconv as fc

    w = np.zeros((4, 6, 3, 3), np.float32)  # an input gradient: every training run compiles the unpacked product
    fc.conv2d_backward_input(np.zeros((2, 4, 8, 8), np.float32), w, (2, 6, 10, 10))
    if os.environ.get("FASTCONV_NO_CACHE", "") == "":
        assert firstrun.kernels_cached() is True
        lines = []
        assert firstrun.notice(lines.append) is False and lines == []


def test_progress_bar_stays_off_a_file_or_pipe(tmp_path, small, monkeypatch):
    """stderr redirected to a file (as under pytest): no tqdm bar, whose carriage-return updates would flood
    it, only the epoch lines."""
    monkeypatch.setattr(sys, "stderr", open(tmp_path / "err.txt", "w"))
    assert T._bar(T.TrainConfig(progress=True), 0, 10, 0) is None


def test_example_script_trains_lenet(tmp_path):
    """The shipped example, run as a user runs it (two epochs here), learns the digits and prints the test
    accuracy last."""
    r = subprocess.run([sys.executable, "-m", "fastconv.examples.train_lenet", "2"], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("test accuracy: ") and float(last.split()[-1].rstrip("%")) > 85.0
