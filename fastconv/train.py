"""The training loop behind ``fastconv train``: data, augmentation, schedule, evaluation, checkpoints,
metrics and plots. Training is reproducible: every batch draws its order and augmentation from a generator
seeded by (seed, epoch, batch), so a run resumed from a checkpoint continues exactly as an uninterrupted one.
"""
import csv
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint, data, firstrun, nn, optim
from ._checks import is_device_array, to_host
from .models import MODELS


@dataclass
class TrainConfig:
    model: str = "lenet5"
    data: str = "digits"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    schedule: str = "onecycle"  # onecycle | cosine | constant
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 0  # 0: all cores
    augment: int = 2  # random shifts of up to this many pixels; 0 turns augmentation off
    out: str = ""  # default runs/<model>
    resume: str = ""
    device: str = "cpu"
    progress: bool = True
    distributed: bool = False  # data-parallel over the MPI world (mpiexec -n N fastconv train --distributed)

    def check(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        if self.schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(f"schedule must be onecycle, cosine or constant, got {self.schedule!r}")
        if self.optimizer not in optim.OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(optim.OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.augment < 0 or self.threads < 0:
            raise ValueError("augment and threads must be >= 0")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        return self


def lr_at(cfg, step, total):
    """Learning rate at global step ``step`` of ``total``: one-cycle (as torch's OneCycleLR, cosine, 30% warm-up,
    from lr/25 up to lr and down to lr/1e4), cosine decay, or constant."""
    t = min(step / max(total - 1, 1), 1.0)
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))
    lo, end, warm = cfg.lr / 25, cfg.lr / 25 / 1e4, 0.3
    if t < warm:
        return lo + (cfg.lr - lo) * 0.5 * (1 - math.cos(math.pi * t / warm))
    return end + (cfg.lr - end) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


def shift(images, rng, max_shift):
    """Shift each uint8 image (N, 28, 28) by a random whole number of pixels in [-max_shift, max_shift] in
    each direction, filling with zeros."""
    if max_shift == 0:
        return images
    n, h, w = images.shape
    m = max_shift
    padded = np.zeros((n, h + 2 * m, w + 2 * m), images.dtype)
    padded[:, m : m + h, m : m + w] = images
    dy, dx = rng.integers(0, 2 * m + 1, size=(2, n))
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def batch_rng(seed, epoch, batch):
    return np.random.default_rng([seed, epoch, batch])


def evaluate(model, images, labels, batch_size=500):
    """(mean loss, accuracy, predictions) of ``model`` in eval mode on uint8 images."""
    was_training = model.training
    model.eval()
    crit = nn.CrossEntropyLoss()
    losses, preds = [], []
    try:
        for i in range(0, len(labels), batch_size):
            logits = to_host(model(_to_device(model, data.to_input(images[i : i + batch_size]))))
            losses.append(crit(logits, labels[i : i + batch_size]) * len(logits))
            preds.append(np.argmax(logits, axis=1))
    finally:
        model.train(was_training)
    preds = np.concatenate(preds)
    return float(np.sum(losses) / len(labels)), float(np.mean(preds == labels)), preds


LOSS_EVERY = 50  # on the GPU, batches between reads of the training loss (each read waits for the device)


def _check_finite(loss, epoch, b, out):
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"non-finite training loss {loss} at epoch {epoch + 1}, batch {b}: stopping; the last good "
            f"checkpoints are in {out} (try a lower --lr)")


def _device_tally(cfg, split, order, start_batch, per_epoch, ranks):
    """On the GPU, the epoch's labels (this rank's rows, in the epoch's order) on the device once and its
    losses and hits kept there (fastconv.cuda.EpochTally); None on the CPU."""
    if cfg.device != "cuda":
        return None
    from .cuda import EpochTally

    rows = [ranks.local(order[b * cfg.batch_size : (b + 1) * cfg.batch_size]) for b in range(start_batch, per_epoch)]
    return EpochTally(split.y_train[np.concatenate(rows)] if rows else np.zeros(0, np.int64))


def _to_device(model, x):
    p = model.parameters()[0].data
    if is_device_array(p):
        from . import cuda

        return cuda.to_device(x)
    return x


@dataclass
class Result:
    test_accuracy: float
    best_accuracy: float
    epochs: list = field(default_factory=list)
    interrupted: bool = False
    out: str = ""


class _Interrupt:
    """Turns Ctrl-C into a flag checked between steps, so a step is never cut in half."""

    def __enter__(self):
        self.hit = False
        try:
            self.old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler
            self.old = None
        return self

    def _handle(self, signum, frame):
        self.hit = True

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


class _Ranks:
    """The processes a run trains on: this one alone, or the MPI world (``--distributed``), where each takes
    every world_size-th image of each global batch and of the test set, and rank 0 alone writes."""

    def __init__(self, distributed):
        self.dist = None
        if distributed:
            from . import distributed as dist

            dist.init()
            self.dist = dist
        self.rank, self.size = (self.dist.rank(), self.dist.world_size()) if self.dist else (0, 1)
        self.writer = self.rank == 0

    def local(self, a):
        return a[self.rank :: self.size]

    def sum(self, *values):
        return values if self.dist is None else tuple(float(v) for v in self.dist.allreduce_sum(np.array(values, float)))

    def any(self, flag):
        return flag if self.dist is None else self.dist.any_rank(flag)


def train(cfg, split=None, log=print):
    """Train as ``cfg`` says; returns a :class:`Result`. ``split`` overrides ``cfg.data`` (tests use it)."""
    cfg.check()
    ranks = _Ranks(cfg.distributed)
    if cfg.batch_size % ranks.size:
        raise ValueError(f"batch_size {cfg.batch_size} (the global batch) must be divisible by the {ranks.size} ranks")
    if cfg.threads or ranks.dist:
        from . import set_num_threads

        set_num_threads(cfg.threads or ranks.dist.default_threads())
    if not ranks.writer:
        log = lambda *a, **k: None  # noqa: E731  (rank 0 alone prints)
    split = split or data.load(cfg.data)
    out = Path(cfg.out or f"runs/{cfg.model}")
    if ranks.writer:
        out.mkdir(parents=True, exist_ok=True)
    n = len(split.y_train)
    per_epoch = math.ceil(n / cfg.batch_size)
    total = per_epoch * cfg.epochs

    if cfg.resume:
        ck = checkpoint.load(cfg.resume)
        model, opt, pos = ck.model, ck.optimizer, ck.position
        if opt is None or "epoch" not in pos:
            raise ValueError(f"checkpoint {cfg.resume} holds no training position to resume from")
        epoch, start_batch = pos["epoch"], pos["batch"]
        history, best = pos.get("history", []), pos.get("best_accuracy", 0.0)
        log(f"resuming from {cfg.resume} at epoch {epoch + 1}, batch {start_batch}")
    else:
        nn.manual_seed(cfg.seed)
        model = MODELS[cfg.model]()
        opt = _make_optimizer(cfg, model)
        epoch, start_batch, history, best = 0, 0, [], 0.0
    if ranks.dist:
        ranks.dist.broadcast_parameters(model)  # every rank starts from rank 0's parameters
    if cfg.device == "cuda":
        model.to("cuda")
        opt = _rebind(opt, model)
    if cfg.device == "cpu":
        firstrun.notice(log)
    crit = nn.CrossEntropyLoss()
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]

    def position(ep, b):
        return {"epoch": ep, "batch": b, "history": history, "best_accuracy": best, "config": asdict(cfg)}

    interrupted = False
    with _Interrupt() as stop:
        while epoch < cfg.epochs and not interrupted:
            order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
            t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
            bar = _bar(cfg, epoch, per_epoch, start_batch) if ranks.writer else None
            tally = _device_tally(cfg, split, order, start_batch, per_epoch, ranks)
            for b in range(start_batch, per_epoch):
                if ranks.any(stop.hit):  # (every rank stops at the same batch)
                    interrupted = True
                    if ranks.writer:
                        checkpoint.save(out / "last.npz", model, opt, position(epoch, b))
                    log(f"interrupted: saved a resumable checkpoint to {out / 'last.npz'} (epoch {epoch + 1}, batch {b})")
                    break
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]  # the global batch
                rng = batch_rng(cfg.seed, epoch, b)
                x = data.to_input(ranks.local(shift(split.x_train[idx], rng, cfg.augment)))
                idx = ranks.local(idx)
                for i, d in enumerate(dropouts):
                    d._rng = np.random.default_rng([cfg.seed, epoch, b, i])
                opt.lr = lr_at(cfg, epoch * per_epoch + b, total)
                model.zero_grad()
                logits = model(_to_device(model, x))
                if tally is None:
                    loss = crit(logits, split.y_train[idx])
                    _check_finite(loss, epoch, b, out)
                    model.backward(crit.backward())
                    loss_sum += loss * len(idx)
                    correct += int(np.sum(np.argmax(to_host(logits), axis=1) == split.y_train[idx]))
                else:  # the loss stays on the device, read every LOSS_EVERY batches
                    model.backward(tally.batch(logits, seen))
                if ranks.dist:
                    ranks.dist.allreduce_gradients(model)
                opt.step()
                seen += len(idx)
                if tally is not None and ((b + 1) % LOSS_EVERY == 0 or b == per_epoch - 1):
                    loss_sum, correct = tally.read(seen)
                    _check_finite(loss_sum, epoch, b, out)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.4f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
            if bar is not None:
                bar.close()
            if interrupted:
                break
            train_time = time.perf_counter() - t0
            seen, loss_sum, correct = ranks.sum(seen, loss_sum, correct)
            n_test = len(ranks.local(split.y_test))
            test_loss, test_acc, _ = evaluate(model, ranks.local(split.x_test), ranks.local(split.y_test))
            test_loss, test_acc, n_test = ranks.sum(test_loss * n_test, test_acc * n_test, n_test)
            test_loss, test_acc = test_loss / n_test, test_acc / n_test
            row = {"epoch": epoch + 1, "lr": opt.lr, "train_loss": loss_sum / max(seen, 1),
                   "train_accuracy": correct / max(seen, 1), "test_loss": test_loss, "test_accuracy": test_acc,
                   "seconds": train_time, "images_per_second": seen / train_time}
            history.append(row)
            epoch, start_batch = epoch + 1, 0
            if test_acc > best:
                best = test_acc
                if ranks.writer:
                    checkpoint.save(out / "best.npz", model, opt, position(epoch, 0))
            if ranks.writer:
                checkpoint.save(out / "last.npz", model, opt, position(epoch, 0))
                write_metrics(out, history)
            log(f"epoch {row['epoch']:3d}/{cfg.epochs}  loss {row['train_loss']:.4f}  test loss {test_loss:.4f}  "
                f"test accuracy {100 * test_acc:.2f}%  {row['images_per_second']:.0f} img/s")
    if history and ranks.writer:
        plot(out, history)
    final = history[-1]["test_accuracy"] if history else float("nan")
    return Result(final, best, history, interrupted, str(out))


def _make_optimizer(cfg, model):
    if cfg.optimizer == "sgd":
        return optim.SGD(model.parameters(), cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return optim.Adam(model.parameters(), cfg.lr, weight_decay=cfg.weight_decay)


def _rebind(opt, model):
    """After model.to('cuda') the optimizer's state moves with it."""
    sd = opt.state_dict()
    new = type(opt)(model.parameters(), opt.lr)
    new.load_state_dict(sd)
    return new


def _bar(cfg, epoch, total, start):
    if not cfg.progress:
        return None
    import sys

    if not sys.stderr.isatty():  # a file or pipe gets the epoch lines only, not a carriage-return update per batch
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)


def write_metrics(out, history):
    """metrics.json and metrics.csv, each written atomically."""
    out = Path(out)
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(history, indent=1))
    tmp.replace(out / "metrics.json")
    tmp = out / ".metrics.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    tmp.replace(out / "metrics.csv")


def plot(out, history):
    """curves.png: loss and accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [r["train_loss"] for r in history], label="train")
    a.plot(ep, [r["test_loss"] for r in history], label="test")
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    a.legend()
    b.plot(ep, [100 * r["train_accuracy"] for r in history], label="train")
    b.plot(ep, [100 * r["test_accuracy"] for r in history], label="test")
    b.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    b.legend()
    fig.tight_layout()
    tmp = Path(out) / ".curves.png.tmp"
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    tmp.replace(Path(out) / "curves.png")
