"""``python -m engine.fractalnet train|evaluate|predict``: the lab's FractalNet work from a terminal.

``train`` builds the same :class:`TrainSpec` the page submits (its flags are generated from the spec's and the
model's fields) and writes the same result folder; Ctrl-C leaves a checkpoint to ``--resume`` from.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

import numpy as np

from engine.cli import (ArgumentParser, add_spec_arguments, build_spec, cli_main, count_arg, device_arg, overrides,
                        path_arg, writable_dir)
from engine.datasets import load_dataset, load_image
from engine.errors import Cancelled
from engine.fractalnet.checkpoint import load_checkpoint, read_checkpoint_config
from engine.fractalnet.inference import confusion_matrix, ensemble_predict, evaluate, predict
from engine.fractalnet.model import FractalNetConfig
from engine.fractalnet.results import read_summary, run_to_dir
from engine.fractalnet.train import DEFAULT_LR, TrainSpec, auto_threads
from engine.fractalnet.variants import VARIANTS, variant_config


class _Flag:
    """A cancel object set by Ctrl-C, so the CLI leaves a checkpoint behind like the job runner does."""

    def __init__(self) -> None:
        self.flag = False

    def is_set(self) -> bool:
        return self.flag


PROG = "python -m engine.fractalnet"


def _threads(text: str) -> int | str:
    return "auto" if text.strip().lower() == "auto" else count_arg(1, 1024)(text)


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Train and use FractalNets.")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a variant on a dataset; writes a checkpoint and metrics to --out")
    t.add_argument("--variant", default="small", choices=list(VARIANTS))
    t.add_argument("--path", default=None, type=path_arg, help="the dataset file/folder for file datasets")
    t.add_argument("--resume", default=None, type=path_arg, help="a checkpoint directory to continue")
    t.add_argument("--device", default=None, type=device_arg, help="auto (default), cpu or cuda[:N]")
    t.add_argument("--threads", default="auto", type=_threads,
                   help="torch CPU threads, or 'auto' (1 when the machine is busy)")
    t.add_argument("--out", required=True, type=path_arg, help="the result folder (created if missing)")
    add_spec_arguments(t, TrainSpec)
    add_spec_arguments(t, FractalNetConfig, exclude=("num_classes", "in_channels"))
    e = sub.add_parser("evaluate", help="accuracy of the full net and each column on a dataset's test split")
    e.add_argument("checkpoint", type=path_arg)
    e.add_argument("--dataset", default=None, help="default: the dataset the checkpoint was trained on")
    e.add_argument("--path", default=None, type=path_arg)
    e.add_argument("--device", default=None, type=device_arg)
    e.add_argument("--json", action="store_true")
    r = sub.add_parser("predict", help="class probabilities for image files (.png/.jpg/... or .npy)")
    r.add_argument("checkpoint", type=path_arg)
    r.add_argument("images", nargs="+", type=path_arg)
    r.add_argument("--ensemble", nargs="*", default=[], type=path_arg,
                   help="more checkpoints to average with the first")
    r.add_argument("--column", type=count_arg(-64, 63), default=None, help="one column alone (default: full net)")
    r.add_argument("--top", type=count_arg(1, 1_000_000), default=3)
    r.add_argument("--invert", action="store_true", help="dark ink on a light background: invert first")
    r.add_argument("--device", default=None, type=device_arg)
    return p


def _train(p: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    fields: dict[str, Any] = overrides(p, TrainSpec, a)
    model = build_spec(p, variant_config, name=a.variant, **overrides(p, FractalNetConfig, a))
    defaults = TrainSpec()
    optimizer = fields.get("optimizer", defaults.optimizer)
    fields.setdefault("lr", DEFAULT_LR[optimizer])
    epochs = fields.get("epochs", defaults.epochs)
    fields["warmup_epochs"] = min(fields.get("warmup_epochs", defaults.warmup_epochs), epochs)
    spec = build_spec(p, TrainSpec, model=model, dataset_path=a.path, resume_from=a.resume, **fields)
    if a.resume:
        read_checkpoint_config(a.resume)  # a folder that is no checkpoint fails now, not after loading the data
    out = writable_dir("--out", a.out)
    from tqdm import tqdm

    bars: list = []  # made at the first progress, so an error before training prints only its one line
    flag = _Flag()

    def progress(fraction: float, info: dict) -> None:
        if not bars:
            bars.append(tqdm(total=100.0, unit="%", desc=f"{a.variant} on {spec.dataset}", dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}% [{elapsed}<{remaining}{postfix}]"))
        bar = bars[0]
        bar.n = round(100.0 * fraction, 2)
        if info.get("kind") == "step":
            bar.set_postfix(loss=f"{info['loss']:.3f}", acc=f"{info['accuracy']:.3f}",
                            img_s=f"{info['images_per_s']:.0f}", refresh=False)
        elif info.get("kind") == "epoch":
            cols = " ".join(f"{info[k]:.4f}" for k in sorted(info) if k.startswith("val_accuracy_col"))
            bar.write(f"epoch {int(info['epoch'])}: train loss {info['train_loss']:.4f} "
                      f"val acc {info['val_accuracy']:.4f} columns [{cols}]")
        bar.refresh()

    t0 = time.perf_counter()
    old_handler = signal.signal(signal.SIGINT, lambda *_: setattr(flag, "flag", True))
    try:
        print(f"torch threads: {auto_threads() if a.threads == 'auto' else a.threads} ({a.threads})")
        run_to_dir(spec, out, progress=progress, cancel=flag, device=a.device, threads=a.threads)
    except Cancelled as exc:
        print(f"{exc}; checkpoint left in {a.out} (resume with --resume {a.out})")
        return 130
    finally:
        signal.signal(signal.SIGINT, old_handler)
        for bar in bars:
            bar.close()
    summary = read_summary(out)
    acc = summary["accuracy"]
    print(f"test accuracy: full net {acc['full']:.4f}; columns "
          + ", ".join(f"{k}: {v:.4f}" for k, v in enumerate(acc["columns"])))
    print(f"wall time {time.perf_counter() - t0:.1f} s (training {summary['timings']['train_s']:.1f} s, "
          f"{summary['timings']['train_images_per_s']:.0f} images/s); written to {a.out}")
    return 0


def _evaluate(a: argparse.Namespace) -> int:
    ck = load_checkpoint(a.checkpoint, a.device)
    trained = ck.trained_on()
    name = a.dataset or trained["dataset"]
    path = a.path if a.dataset else (a.path or trained["dataset_path"])
    ds = load_dataset(name, path=path, seed=trained["data_seed"], image_size=trained["image_size"],
                      max_test=trained["max_test"])
    out = {"full": evaluate(ck.model, ds.x_test, ds.y_test)["accuracy"],
           "columns": [evaluate(ck.model, ds.x_test, ds.y_test, k)["accuracy"]
                       for k in range(ck.model.num_columns)],
           "confusion_matrix": confusion_matrix(ck.model, ds.x_test, ds.y_test).tolist(),
           "dataset": name, "test_images": int(len(ds.x_test))}
    if a.json:
        print(json.dumps(out))
    else:
        print(f"{name} test split ({out['test_images']} images): full net {out['full']:.4f}")
        for k, v in enumerate(out["columns"]):
            print(f"  column {k} alone: {v:.4f}")
        print("confusion matrix (rows true, columns predicted):")
        for row in out["confusion_matrix"]:
            print("  " + " ".join(f"{v:4d}" for v in row))
    return 0


def _predict(a: argparse.Namespace) -> int:
    ck = load_checkpoint(a.checkpoint, a.device)
    images = np.concatenate([load_image(f, ck.config.in_channels, ck.image_size, a.invert) for f in a.images])
    dirs = [a.checkpoint, *a.ensemble]
    probs = ensemble_predict(dirs, images, a.column, a.device) if a.ensemble else predict(
        a.checkpoint, images, a.column, a.device)
    for f, pr in zip(a.images, probs):
        top = np.argsort(-pr)[: a.top]
        print(f"{f}: " + ", ".join(f"{ck.classes[i]} {pr[i]:.3f}" for i in top))
    return 0


@cli_main(PROG)
def main(argv: list[str] | None = None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    if a.cmd == "train":
        return _train(p, a)
    if a.cmd == "evaluate":
        return _evaluate(a)
    return _predict(a)


if __name__ == "__main__":
    sys.exit(main())
