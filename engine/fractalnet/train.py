"""Train a FractalNet: the run's spec, and the loop that measures every column as it goes.

Why it is built this way: the paper claims drop-path makes each column a working network on its own, so every
epoch validates the full net *and* each column alone (on the held-out split; nothing is selected on it). Resume
is exact (optimiser, RNG and position in the epoch are checkpointed; each epoch's shuffle is derived from
``(seed, epoch)``), and a cancel writes the state before it raises, so no work is lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from engine.datasets import DATASETS, augment_batch, load_dataset
from engine.device import resolve_device
from engine.errors import Cancelled
from engine.fractalnet.checkpoint import (
    Position,
    load_checkpoint,
    load_trainer_state,
    save_checkpoint,
    save_trainer_state,
)
from engine.fractalnet.cost import check_activation_memory, column_depths, column_parameter_counts, steps_per_epoch
from engine.fractalnet.inference import autocast, confusion_matrix, evaluate, precision_used
from engine.fractalnet.metrics import read_metrics, write_metrics
from engine.fractalnet.model import FractalNet, FractalNetConfig, calibrate_batch_norm
from engine.fractalnet.variants import variant_config
from engine.specs import SpecMixin, check_items, check_value, nested_spec, short_repr, spec_field

OPTIMIZERS: dict[str, str] = {
    "sgd": "SGD with Nesterov momentum (the paper's optimiser)",
    "adamw": "AdamW (decoupled weight decay)",
}
DEFAULT_LR: dict[str, float] = {"sgd": 0.05, "adamw": 0.004}  # what the defaults were tuned with on digits
SCHEDULES: dict[str, str] = {
    "cosine": "linear warm-up, then cosine decay to zero",
    "step": "linear warm-up, then multiply by gamma at each milestone (fractions of the run)",
    "constant": "linear warm-up, then constant",
}
PRECISIONS: dict[str, str] = {
    "auto": "bfloat16 autocast on CUDA devices that support it, float32 elsewhere",
    "fp32": "float32 throughout",
    "bf16": "bfloat16 autocast (also on the CPU, where it is usually slower)",
}


MAX_MILESTONES = 32  # of the step schedule
MAX_PATH = 4096  # characters of a dataset or checkpoint path (Linux's PATH_MAX)


def _fraction(name: str, value: Any) -> float:
    m = check_value(name, value, float)
    if not 0.0 < m < 1.0:
        raise ValueError(f"{name}: must be a fraction of the run in (0, 1), got {m!r}")
    return m


def _check_path(name: str, value: str | None) -> None:
    """A path a user typed or a link carried: text of at most MAX_PATH characters, no NUL (the OS refuses it
    with a TypeError-like crash deep inside ``open``)."""
    if value is not None and (len(value) > MAX_PATH or "\0" in value):
        raise ValueError(f"{name}: must be a path of at most {MAX_PATH:,} characters without NUL, "
                         f"got {short_repr(value)}")


def _words(registry: dict[str, str]) -> str:
    return " · ".join(f"{k}: {v}" for k, v in registry.items()) + "."


@dataclass(frozen=True)
class TrainSpec(SpecMixin):
    """A training run: the model, the data, the optimiser and schedule, and the seeds.

    The model's ``num_classes`` and ``in_channels`` are taken from the dataset at train time (so the page can
    pick a variant before it knows the data). The defaults train ``small`` on digits to >= 97% test accuracy
    with the deepest column alone within 2 points of the full net, in minutes on a 2-core CPU: AdamW, because on
    small data it gets there in far fewer epochs than the paper's SGD (``optimizer="sgd"``, ``lr=0.05``), and
    ``momentum`` doubles as AdamW's beta1.
    ``bn_calibration`` training images (no augmentation) re-estimate the batch-norm statistics of the full net
    and of each column before every validation (see ``engine.fractalnet.FractalBatchNorm2d``); 0 turns it off.
    ``resume_from`` names a checkpoint directory (a partial or finished run) to continue.
    """

    model: FractalNetConfig = field(default_factory=lambda: variant_config("small"))
    dataset: str = spec_field("digits", choices=tuple(DATASETS), help="A dataset of engine.datasets.DATASETS "
                              "(the file formats also need dataset_path).")
    dataset_path: str | None = spec_field(None, cli=False, ui=False, help="The file or folder of a file dataset.")
    data_seed: int = spec_field(0, range=(0, 2**31 - 1), help="Seed of the train/test split and of generated data.")
    image_size: int | None = spec_field(None, range=(4, 512), help="Size of synthetic images, or the size a "
                                        "folder's images are resized to.")
    max_train: int | None = spec_field(None, range=(1, 10_000_000), step=100, label="Use at most N training images",
                                       help="A seeded random subset of the training split (empty = all).")
    max_test: int | None = spec_field(None, range=(1, 10_000_000), help="A seeded random subset of the test split.")
    augment: bool = spec_field(True, label="Augment (the dataset's default)",
                               help="The dataset's pad-crop (and flips where they keep the class).")
    epochs: int = spec_field(20, range=(1, 1000), label="Epochs")
    batch_size: int = spec_field(32, range=(2, 4096), step=8, label="Batch size", url="batch")
    optimizer: str = spec_field("adamw", choices=tuple(OPTIMIZERS), label="Optimiser", help=_words(OPTIMIZERS))
    lr: float = spec_field(0.004, range=(1e-5, 10.0), log=True, label="Learning rate",
                           help="Peak learning rate (tuned on digits: "
                           + ", ".join(f"{k} {v}" for k, v in DEFAULT_LR.items()) + ").")
    momentum: float = spec_field(0.9, range=(0.0, 0.999), step=0.05, label="Momentum (β1 for AdamW)")
    weight_decay: float = spec_field(5e-4, range=(0.0, 0.5), label="Weight decay",
                                     help="On conv and linear weights only.")
    schedule: str = spec_field("cosine", choices=tuple(SCHEDULES), label="Schedule", help=_words(SCHEDULES))
    warmup_epochs: float = spec_field(1.0, range=(0.0, 1000.0), step=0.5, label="Warm-up epochs", url="warmup",
                                      help="Linear warm-up (at most the number of epochs).")
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = spec_field(0.1, range=(0.001, 1.0), help="Factor of the step schedule at each milestone.")
    label_smoothing: float = spec_field(0.1, range=(0.0, 0.99))
    seed: int = spec_field(0, range=(0, 2**31 - 1), label="Seed", help="Initial weights, shuffling, drop-path.")
    precision: str = spec_field("auto", choices=tuple(PRECISIONS), help=_words(PRECISIONS))
    eval_batch_size: int = spec_field(500, range=(1, 65_536))
    bn_calibration: int = spec_field(128, range=(0, 1_000_000), help="Training images that re-estimate the "
                                     "batch-norm statistics before each validation (0 = off).")
    log_every: int = spec_field(1, range=(1, 1_000_000), help="Send a step row every this many steps.")
    resume_from: str | None = spec_field(None, cli=False, ui=False, help="A checkpoint folder to continue.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", nested_spec("model", FractalNetConfig, self.model))
        object.__setattr__(self, "milestones", check_items(
            "milestones", self.milestones, _fraction, max_len=MAX_MILESTONES, what="fractions of the run"))
        self.check_fields()
        for name in ("dataset_path", "resume_from"):
            _check_path(name, getattr(self, name))
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs: must be in [0, epochs={self.epochs}], got {self.warmup_epochs}")
        if self.image_size is not None:  # otherwise the dataset's size is known only at train time (checked there)
            check_activation_memory(self.model, (self.image_size, self.image_size), self.batch_size)

    def __hash__(self) -> int:
        return hash(self.to_json())


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model (evaluation mode) and everything measured on the way."""

    model: FractalNet
    config: FractalNetConfig
    classes: list[str]
    history: list[dict]
    summary: dict
    image_size: tuple[int, int]


def load_data(spec: TrainSpec):
    """The dataset named by ``spec`` (built-in or a user's file), via :func:`engine.datasets.load_dataset`."""
    return load_dataset(
        spec.dataset, path=spec.dataset_path, seed=spec.data_seed, image_size=spec.image_size,
        max_train=spec.max_train, max_test=spec.max_test,
    )


def resolved_config(spec: TrainSpec, num_classes: int, in_channels: int) -> FractalNetConfig:
    return dataclasses.replace(spec.model, num_classes=num_classes, in_channels=in_channels)


def lr_at(spec: TrainSpec, step: int, total_steps: int, per_epoch: int) -> float:
    """The learning rate for optimiser step ``step`` (0-based): linear warm-up, then the chosen schedule."""
    warm = int(round(spec.warmup_epochs * per_epoch))
    if step < warm:
        return spec.lr * (step + 1) / warm
    t = (step - warm) / max(1, total_steps - warm)
    if spec.schedule == "cosine":
        return 0.5 * spec.lr * (1.0 + math.cos(math.pi * min(1.0, t)))
    if spec.schedule == "step":
        passed = sum(1 for m in spec.milestones if step >= m * total_steps)
        return spec.lr * spec.gamma**passed
    return spec.lr


def make_optimizer(spec: TrainSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Weight decay on conv and linear weights only: on batch-norm scales, biases and join logits it would
    only pull them toward zero, which is not regularisation of capacity."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # Fused kernels instead of a loop over ~100 small tensors: AdamW's step took 6.6 ms with the loop and 3.4 ms
    # fused for `small` on one CPU thread (15% of a training step on digits before).
    if spec.optimizer == "sgd":
        cls, kw = torch.optim.SGD, {"momentum": spec.momentum, "nesterov": spec.momentum > 0}
    else:
        cls, kw = torch.optim.AdamW, {"betas": (spec.momentum, 0.999)}
    try:
        return cls(groups, lr=spec.lr, fused=True, **kw)
    except (RuntimeError, ValueError, TypeError):  # a device or dtype without a fused kernel
        return cls(groups, lr=spec.lr, foreach=True, **kw)


def auto_threads() -> int:
    """Torch CPU threads for a training process: torch's default, or 1 when the machine is already busy.

    Why: on a shared machine (several jobs, other users), each of torch's intra-op threads waits at every
    parallel region for the slowest one, which is often descheduled. Measured here with the 1-minute load
    average near 15 on 2 cores: one thread trained ``small`` at 54-170 images/s, two threads at 5-22.
    """
    default = torch.get_num_threads()
    try:
        load = os.getloadavg()[0]
    except OSError:
        return default
    cores = os.cpu_count() or 1
    return 1 if load >= cores - 0.5 else default


@contextlib.contextmanager
def torch_threads(threads: int | str | None):
    """Use ``threads`` torch CPU threads inside the block (``"auto"``: :func:`auto_threads`; None: as is)."""
    if threads is None:
        yield
        return
    n = auto_threads() if threads == "auto" else int(threads)
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _column_metrics(model: FractalNet, x, y, spec: TrainSpec, dev, precision: str, check=None) -> dict:
    """Validation loss/accuracy of the full net and of each column alone (``check()`` runs between them)."""
    full = evaluate(model, x, y, None, spec.eval_batch_size, dev, precision)
    row = {"val_loss": full["loss"], "val_accuracy": full["accuracy"]}
    for k in range(model.num_columns):
        if check is not None:
            check()
        m = evaluate(model, x, y, k, spec.eval_batch_size, dev, precision)
        row[f"val_loss_col{k}"] = m["loss"]
        row[f"val_accuracy_col{k}"] = m["accuracy"]
    return row


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**62)


def train(
    spec: TrainSpec,
    callback: Callable[[float, dict], None] | None = None,
    cancel: Any = None,
    device: str | torch.device | None = None,
    resume_from: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    dataset: Any = None,
) -> TrainResult:
    """Train a FractalNet as ``spec`` says; return the model (evaluation mode), history and summary.

    ``callback(fraction, info)`` gets one info dict per logged step (``kind="step"``: loss, accuracy, lr,
    images_per_s, drop) and per epoch (``kind="epoch"``: train and validation loss/accuracy, the latter for
    the full net and each column). ``cancel.is_set()`` is checked before every step: when set, the state is
    saved to ``checkpoint_dir`` (if given) and :class:`Cancelled` is raised. ``checkpoint_dir`` also receives a
    checkpoint at the end of every epoch. ``resume_from`` (or ``spec.resume_from``) continues a checkpoint
    written by this function. ``dataset`` (an :class:`engine.datasets.ImageDataset`) skips loading ``spec``'s data.
    """
    t_start = time.perf_counter()
    dev = resolve_device(device)
    ds = dataset if dataset is not None else load_data(spec)
    config = resolved_config(spec, ds.num_classes, ds.in_channels)
    check_activation_memory(config, tuple(ds.image_size), spec.batch_size)
    precision = precision_used(dev, spec.precision)

    torch.manual_seed(spec.seed)
    model = FractalNet(config)
    x_train = torch.from_numpy(np.ascontiguousarray(ds.x_train))
    y_train = torch.from_numpy(np.ascontiguousarray(ds.y_train))
    with torch.no_grad():
        model.input_mean.copy_(x_train.mean(dim=(0, 2, 3)))
        model.input_std.copy_(x_train.std(dim=(0, 2, 3)).clamp_min(1e-3))
    model.to(dev)
    optimizer = make_optimizer(spec, model)
    gens = {
        "augment": torch.Generator().manual_seed(spec.seed + 1),
        "drop_path": torch.Generator().manual_seed(spec.seed + 2),
    }
    n = len(x_train)
    per_epoch = steps_per_epoch(n, spec.batch_size)
    total_steps = per_epoch * spec.epochs
    history: list[dict] = []
    pos = Position()

    resume = resume_from if resume_from is not None else spec.resume_from
    if resume:
        rd = Path(resume)
        ck = load_checkpoint(rd, dev)
        if ck.config != config:
            raise ValueError(
                f"resume_from: the checkpoint's model {ck.config.to_json()} differs from this run's {config.to_json()}"
            )
        model.load_state_dict(ck.model.state_dict())
        pos = load_trainer_state(rd, optimizer, gens, spec.optimizer, dev)
        history = read_metrics(rd)
        # Rows logged after the checkpoint's position cannot exist (we save before raising), but be safe.
        history = [r for r in history if int(r.get("step", 0)) <= pos.global_step]

    aug = ds.augmentation if spec.augment else None
    out_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    x_test, y_test = ds.x_test, ds.y_test
    calib_idx = torch.randperm(n, generator=torch.Generator().manual_seed(spec.seed + 3))[: spec.bn_calibration]
    x_calib = x_train[calib_idx.sort().values]

    def save(complete: bool) -> None:
        if out_dir is None:
            return
        save_checkpoint(
            out_dir, model, ds.classes, ds.image_size,
            {"epoch": pos.epoch, "step": pos.global_step, "complete": complete, "dataset": ds.summary(),
             "spec": spec.to_dict()},
        )
        save_trainer_state(out_dir, optimizer, pos, gens, spec.optimizer, dev)
        write_metrics(out_dir, history)

    def emit(info: dict) -> None:
        history.append(info)
        if callback is not None:
            callback(min(1.0, pos.global_step / total_steps), info)

    def check_cancel() -> None:
        """Stop between steps (or between validation passes) with the state saved, so a resume loses nothing."""
        if cancel is not None and cancel.is_set():
            save(complete=False)
            raise Cancelled(f"training stopped at step {pos.global_step} (epoch {pos.epoch})")

    model.train()
    while pos.epoch < spec.epochs:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(_epoch_seed(spec.seed, pos.epoch)))
        while pos.step_in_epoch < per_epoch:
            check_cancel()
            t0 = time.perf_counter()
            i = pos.step_in_epoch
            idx = perm[i * spec.batch_size:(i + 1) * spec.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if aug is not None and aug.active:
                xb = augment_batch(xb, aug, gens["augment"])
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            lr = lr_at(spec, pos.global_step, total_steps, per_epoch)
            for g in optimizer.param_groups:
                g["lr"] = lr
            with autocast(dev, precision):
                logits = model(xb, generator=gens["drop_path"])
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=spec.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_v = float(loss.detach())
            correct = float((logits.detach().argmax(1) == yb).sum())
            dt = time.perf_counter() - t0
            b = len(idx)
            pos.step_in_epoch += 1
            pos.global_step += 1
            pos.epoch_loss_sum += loss_v * b
            pos.epoch_correct += correct
            pos.epoch_seen += b
            pos.images_seen += b
            pos.epoch_time += dt
            pos.train_time += dt
            if pos.global_step % spec.log_every == 0 or pos.step_in_epoch == per_epoch:
                sample = model.last_sample
                drop = "all" if sample is None else (
                    f"global:{sample.column}" if sample.mode == "global" else sample.mode
                )
                emit({
                    "kind": "step", "epoch": pos.epoch + pos.step_in_epoch / per_epoch, "step": pos.global_step,
                    "loss": loss_v, "accuracy": correct / b, "lr": lr, "images_per_s": b / dt if dt > 0 else 0.0,
                    "drop": drop,
                })
        # End of an epoch: validate the full net and every column alone.
        check_cancel()
        t_eval = time.perf_counter()
        if spec.bn_calibration:
            calibrate_batch_norm(model, x_calib, batch_size=256)
        row = {
            "kind": "epoch", "epoch": float(pos.epoch + 1), "step": pos.global_step,
            "train_loss": pos.epoch_loss_sum / max(1, pos.epoch_seen),
            "train_accuracy": pos.epoch_correct / max(1, pos.epoch_seen),
            "images_per_s": pos.epoch_seen / pos.epoch_time if pos.epoch_time > 0 else 0.0,
            "lr": lr_at(spec, max(0, pos.global_step - 1), total_steps, per_epoch),
        }
        row.update(_column_metrics(model, x_test, y_test, spec, dev, precision, check_cancel))
        model.train()
        row["eval_s"] = time.perf_counter() - t_eval
        row["train_s"] = pos.train_time
        pos.epoch += 1
        pos.step_in_epoch = 0
        pos.epoch_loss_sum = pos.epoch_correct = pos.epoch_time = 0.0
        pos.epoch_seen = 0
        emit(row)
        save(complete=pos.epoch >= spec.epochs)

    model.eval()
    t_final = time.perf_counter()
    final = _column_metrics(model, x_test, y_test, spec, dev, precision)
    cm = confusion_matrix(model, x_test, y_test, None, spec.eval_batch_size, dev)
    ncol = model.num_columns
    summary = {
        "accuracy": {
            "full": final["val_accuracy"],
            "columns": [final[f"val_accuracy_col{k}"] for k in range(ncol)],
        },
        "loss": {"full": final["val_loss"], "columns": [final[f"val_loss_col{k}"] for k in range(ncol)]},
        "confusion_matrix": cm.tolist(),
        "classes": list(ds.classes),
        "epochs": pos.epoch,
        "steps": pos.global_step,
        "model": config.to_dict(),
        "parameters": {
            "total": sum(p.numel() for p in model.parameters()),
            "columns": column_parameter_counts(config),
        },
        "column_depths": column_depths(config),
        "join_weights": model.join_weights() if config.join == "learned" else None,
        "dataset": ds.summary(),
        "device": str(dev),
        "precision": precision,
        "timings": {
            "train_s": pos.train_time,
            "final_eval_s": time.perf_counter() - t_final,
            "wall_s_this_session": time.perf_counter() - t_start,
            "train_images_per_s": pos.images_seen / pos.train_time if pos.train_time > 0 else 0.0,
        },
    }
    return TrainResult(model, config, list(ds.classes), history, summary, tuple(ds.image_size))
