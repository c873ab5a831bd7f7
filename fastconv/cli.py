"""``fastconv train | evaluate | predict | bench | info | export | tune``."""
import argparse
import sys

import numpy as np


_TRAIN_OPTIONS = ("model", "data", "epochs", "batch_size", "lr", "schedule", "optimizer", "momentum", "weight_decay",
                  "seed", "threads", "augment", "out", "device")


def _train(args):
    from dataclasses import asdict

    from .memory import reuse_freed_memory

    reuse_freed_memory()  # a long-running job: keep freed arrays in the heap (see fastconv.memory)

    from . import checkpoint
    from .train import TrainConfig, train

    given = {k: getattr(args, k) for k in _TRAIN_OPTIONS if getattr(args, k) is not None}
    base = asdict(TrainConfig())
    if args.resume:  # continue with the run's own settings; options given now override them
        stored = checkpoint.load(args.resume).position.get("config", {})
        base.update({k: v for k, v in stored.items() if k in base})
    base.update(given, resume=args.resume or "", progress=not args.no_progress, distributed=args.distributed)
    cfg = TrainConfig(**base)
    try:
        result = train(cfg)
    except Exception as e:  # a rank that fails ends the whole job: no other rank waits in a collective forever
        if cfg.distributed and _world_size() > 1:
            from . import distributed

            distributed.abort(f"{type(e).__name__}: {e}")
        raise
    if cfg.distributed and _world_size() > 1:
        from . import distributed

        if distributed.rank() != 0:
            return 130 if result.interrupted else 0
    if result.interrupted:
        print(f"resume with: fastconv train --resume {result.out}/last.npz")
        return 130
    print(f"best test accuracy: {100 * result.best_accuracy:.1f}% (checkpoint {result.out}/best.npz)")
    print(f"metrics: {result.out}/metrics.json, {result.out}/metrics.csv; curves: {result.out}/curves.png")
    print(f"test accuracy: {100 * result.test_accuracy:.1f}%")
    return 0


def _world_size():
    import sys

    if "mpi4py" not in sys.modules:
        return 1
    from . import distributed

    return distributed.world_size()


def _evaluate(args):
    from . import checkpoint, data, firstrun
    from .train import evaluate

    model = checkpoint.load(args.checkpoint).model
    split = data.load(args.data)
    firstrun.notice()
    loss, acc, preds = evaluate(model, split.x_test, split.y_test)
    cm = np.zeros((10, 10), np.int64)
    np.add.at(cm, (split.y_test, preds), 1)
    print(f"{len(split.y_test)} test images from {split.name}; loss {loss:.4f}")
    print("confusion matrix (rows: true digit, columns: predicted)")
    print("      " + " ".join(f"{c:5d}" for c in range(10)))
    for r in range(10):
        print(f"{r:5d} " + " ".join(f"{v:5d}" for v in cm[r]))
    print(f"test accuracy: {100 * acc:.2f}%")
    return 0


def _predict(args):
    from . import checkpoint, data

    model = checkpoint.load(args.checkpoint).model.eval()
    status = 0
    for path in args.images:
        try:
            img = data.prepare_image(path)
        except (ValueError, OSError) as e:
            print(f"{path}: cannot predict: {e}", file=sys.stderr)
            status = 1
            continue
        logits = model(data.to_input(img[None])).astype(np.float64)[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        d = int(np.argmax(p))
        print(f"{path}: {d} (probability {p[d]:.3f})")
    return status


def _info(args):
    from .info import collect

    for k, v in collect().items():
        print(f"{k:22s} {v}")
    return 0


def _bench(args):
    from . import firstrun
    from .benchmarks.harness import main

    firstrun.notice()
    main(quick=args.quick, threads=args.threads, out=args.out, with_torch=not args.no_torch, startup=not args.no_startup,
         only=args.cases)
    return 0


def _export(args):
    from pathlib import Path

    from . import checkpoint, safetensors_format

    model = checkpoint.load(args.checkpoint).model.eval()
    out = Path(args.out)
    if out.suffix == ".safetensors":
        safetensors_format.save(out, model)
    elif out.suffix == ".onnx":
        from . import onnx

        first = next((m for m in model.modules() if hasattr(m, "in_channels")), None)
        shape = args.input_shape or f"{getattr(first, 'in_channels', 1)},28,28"
        try:
            c, h, w = (int(v) for v in shape.split(","))
        except ValueError:
            raise ValueError(f"--input-shape must read C,H,W (three ints), got {shape!r}") from None
        onnx.export(model, out, (1, c, h, w), opset=args.opset)
    else:
        raise ValueError(f"OUT must end in .onnx or .safetensors, got {out.name!r}")
    print(f"wrote {out} from {args.checkpoint}")
    return 0


def _tune(args):
    import time

    from . import firstrun, models, set_num_threads, tuning
    from .kernels.cpu import wisdom

    if args.threads:
        set_num_threads(args.threads)
    if args.forget:
        tuning.forget()
        print(f"removed this machine's choices from {wisdom.path()}")
        return 0
    firstrun.notice()
    shapes = {"lenet5": (1, 28), "resnet20": (1, 28), "resnet20-cifar": (3, 32)}  # (channels, image size)
    if args.model not in shapes:
        raise ValueError(f"--model must be one of {sorted(shapes)}, got {args.model!r}")
    channels, size = shapes[args.model]
    model = models.lenet5() if args.model == "lenet5" else models.resnet20(in_channels=channels)
    t = time.perf_counter()
    for key, ms, chosen in tuning.tune(model, (args.batch_size, channels, size, size), train=not args.inference):
        times = ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items())
        print(f"{key}: {times} -> {chosen or 'the built-in rule (no kernel ' + str(tuning.MARGIN) + 'x faster)'}")
    print(f"wrote {wisdom.path()} for {wisdom.machine_key()} in {time.perf_counter() - t:.1f} s")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="fastconv", description="A small CNN engine: train and use digit classifiers.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model (default: LeNet-5 on the bundled digits)")
    t.add_argument("--model", help="lenet5 (default) or resnet20")
    t.add_argument("--data", help="'digits' (bundled 5k, default), 'mnist' (download) or an IDX directory")
    t.add_argument("--epochs", type=int, help="default 20")
    t.add_argument("--batch-size", type=int, help="default 64")
    t.add_argument("--lr", type=float, help="peak learning rate, default 3e-3")
    t.add_argument("--schedule", choices=["onecycle", "cosine", "constant"], help="default onecycle")
    t.add_argument("--optimizer", choices=["adam", "sgd"], help="default adam")
    t.add_argument("--momentum", type=float, help="for sgd, default 0.9")
    t.add_argument("--weight-decay", type=float, help="default 0")
    t.add_argument("--seed", type=int, help="default 0")
    t.add_argument("--threads", type=int, help="CPU threads (default 0: all cores)")
    t.add_argument("--augment", type=int, help="random shifts of up to N pixels (default 2; 0: none)")
    t.add_argument("--out", help="output directory, default runs/MODEL")
    t.add_argument("--resume", default="", help="checkpoint to resume from (out/last.npz)")
    t.add_argument("--device", choices=["cpu", "cuda"], help="default cpu")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: mpiexec -n N fastconv train --distributed (--batch-size is global; "
                        "--threads per rank, default cores / ranks per machine)")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="accuracy and confusion matrix of a checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("--data", default="digits")
    e.set_defaults(func=_evaluate)

    r = sub.add_parser("predict", help="classify images (PNG/JPEG or .npy)")
    r.add_argument("checkpoint")
    r.add_argument("images", nargs="+")
    r.set_defaults(func=_predict)

    b = sub.add_parser("bench", help="time every kernel and LeNet-5 against im2col+BLAS and PyTorch")
    b.add_argument("--quick", action="store_true", help="shorter timings")
    b.add_argument("--threads", type=int, default=0, help="threads for every engine (0: all cores)")
    b.add_argument("--out", default="bench", help="folder for bench.json and bench.md")
    b.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    b.add_argument("--no-startup", action="store_true", help="skip the fresh-process start-up timings")
    b.add_argument("--cases", nargs="*", help="only the cases whose names contain one of these words")
    b.set_defaults(func=_bench)

    x = sub.add_parser("export", help="write a checkpoint as ONNX (OUT.onnx) or its weights as OUT.safetensors")
    x.add_argument("checkpoint")
    x.add_argument("out", help="OUT.onnx (a model for onnxruntime and others) or OUT.safetensors (the state dict "
                               "under PyTorch's names)")
    x.add_argument("--input-shape", help="C,H,W of one input image for ONNX (default: the first layer's channels, "
                                         "28, 28)")
    x.add_argument("--opset", type=int, default=17, help="ONNX operator set, default 17")
    x.set_defaults(func=_export)

    u = sub.add_parser("tune", help="measure which kernels are fastest here for a model's layers, and keep the choice")
    u.add_argument("--model", default="lenet5", help="lenet5 (default), resnet20 (as `train --model resnet20`: 1 channel, "
                                                        "28x28) or resnet20-cifar (3 channels, 32x32, as the bench)")
    u.add_argument("--batch-size", type=int, default=64, help="default 64 (choices are kept per power of two)")
    u.add_argument("--threads", type=int, default=0, help="CPU threads (default 0: all cores)")
    u.add_argument("--inference", action="store_true", help="the forward pass only (default: a training step)")
    u.add_argument("--forget", action="store_true", help="remove this machine's measured choices")
    u.set_defaults(func=_tune)

    i = sub.add_parser("info", help="versions, threading, CUDA and cache")
    i.set_defaults(func=_info)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, ModuleNotFoundError, RuntimeError, FloatingPointError) as e:
        print(f"fastconv {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
