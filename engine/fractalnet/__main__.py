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

from engine.cli import add_spec_arguments, build_spec, overrides
from engine.datasets import load_dataset, load_image
from engine.errors import Cancelled
from engine.fractalnet.checkpoint import load_checkpoint
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.fractalnet", description="Train and use FractalNets.")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a variant on a dataset; writes a checkpoint and metrics to --out")
    t.add_argument("--variant", default="small", choices=list(VARIANTS))
    t.add_argument("--path", default=None, help="the dataset file/folder for file datasets")
    t.add_argument("--resume", default=None, help="a checkpoint directory to continue")
    t.add_argument("--device", default=None)
    t.add_argument("--threads", default="auto", help="torch CPU threads, or 'auto' (1 when the machine is busy)")
    t.add_argument("--out", required=True)
    add_spec_arguments(t, TrainSpec)
    add_spec_arguments(t, FractalNetConfig, exclude=("num_classes", "in_channels"))
    e = sub.add_parser("evaluate", help="accuracy of the full net and each column on a dataset's test split")
    e.add_argument("checkpoint")
    e.add_argument("--dataset", default=None, help="default: the dataset the checkpoint was trained on")
    e.add_argument("--path", default=None)
    e.add_argument("--device", default=None)
    e.add_argument("--json", action="store_true")
    r = sub.add_parser("predict", help="class probabilities for image files (.png/.jpg/... or .npy)")
    r.add_argument("checkpoint")
    r.add_argument("images", nargs="+")
    r.add_argument("--ensemble", nargs="*", default=[], help="more checkpoints to average with the first")
    r.add_argument("--column", type=int, default=None)
    r.add_argument("--top", type=int, default=3)
    r.add_argument("--invert", action="store_true", help="dark ink on a light background: invert first")
    r.add_argument("--device", default=None)
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
    from tqdm import tqdm

    bar = tqdm(total=100.0, unit="%", desc=f"{a.variant} on {spec.dataset}", dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}% [{elapsed}<{remaining}{postfix}]")
    flag = _Flag()

    def progress(fraction: float, info: dict) -> None:
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
    try:
        signal.signal(signal.SIGINT, lambda *_: setattr(flag, "flag", True))
        threads = a.threads if a.threads == "auto" else int(a.threads)
        print(f"torch threads: {auto_threads() if threads == 'auto' else threads} ({a.threads})")
        run_to_dir(spec, a.out, progress=progress, cancel=flag, device=a.device, threads=threads)
    except Cancelled as exc:
        bar.close()
        print(f"{exc}; checkpoint left in {a.out} (resume with --resume {a.out})")
        return 130
    bar.close()
    summary = read_summary(a.out)
    acc = summary["accuracy"]
    print(f"test accuracy: full net {acc['full']:.4f}; columns "
          + ", ".join(f"{k}: {v:.4f}" for k, v in enumerate(acc["columns"])))
    print(f"wall time {time.perf_counter() - t0:.1f} s (training {summary['timings']['train_s']:.1f} s, "
          f"{summary['timings']['train_images_per_s']:.0f} images/s); written to {a.out}")
    return 0


def _evaluate(a: argparse.Namespace) -> int:
    ck = load_checkpoint(a.checkpoint, a.device)
    trained = ck.meta.get("spec", {})
    name = a.dataset or trained.get("dataset", "digits")
    path = a.path if a.dataset else (a.path or trained.get("dataset_path"))
    ds = load_dataset(name, path=path, seed=int(trained.get("data_seed", 0)),
                      image_size=trained.get("image_size"), max_test=trained.get("max_test"))
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
