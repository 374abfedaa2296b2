"""Train, checkpoint, resume and inspect FractalNets.

One spec (:class:`TrainSpec`) drives the CLI, the job runner (job kind ``fractalnet_train``, task function
:func:`run_to_dir`) and the page, so none of them can disagree about what a run is.

Why it is built this way:

* **Every column is measured.** The paper's claim is that drop-path makes each column a working network on its
  own; so every epoch's validation reports the full net *and* each column alone (``val_accuracy_col{k}``).
  Validation uses the dataset's held-out test split; nothing is selected on it (no early stopping).
* **Checkpoints never unpickle.** Weights and optimizer/RNG state are safetensors; everything else is JSON.
  ``load_checkpoint`` can therefore open a file a stranger uploaded without running their code.
* **Resume is exact.** The checkpoint holds the optimizer state, every random generator's state and the
  position inside the epoch; each epoch's shuffle is re-derived from ``(seed, epoch)``. A run stopped mid-epoch
  and resumed ends with the same weights as one never stopped (on the same device and thread count).
* **Cancel keeps the work.** When ``cancel.is_set()``, the current state is written to the checkpoint directory
  before :class:`engine.errors.Cancelled` is raised, so the job runner keeps a partial result to resume from.

Result files written by :func:`run_to_dir`: ``model.safetensors`` and ``config.json`` (the checkpoint),
``trainer_state.safetensors`` (optimizer and RNG state, for resuming), ``metrics.csv`` (one row per logged step
and per epoch), ``summary.json`` (final accuracy per column and full net, confusion matrix, timings) and
``spec.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from engine.device import resolve_device
from engine.errors import Cancelled
from engine.fractalnet import (
    FractalNet,
    calibrate_batch_norm,
    FractalNetConfig,
    column_depths,
    column_parameter_counts,
    variant_config,
)
from engine.specs import SpecMixin

CHECKPOINT_FORMAT = "fractal-lab/fractalnet-checkpoint"
CHECKPOINT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "trainer_state.safetensors"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
SPEC_FILE = "spec.json"

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
    dataset: str = "digits"
    dataset_path: str | None = None
    data_seed: int = 0
    image_size: int | None = None
    max_train: int | None = None
    max_test: int | None = None
    augment: bool = True
    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float = 0.004
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    label_smoothing: float = 0.1
    seed: int = 0
    precision: str = "auto"
    eval_batch_size: int = 500
    bn_calibration: int = 128
    log_every: int = 1
    resume_from: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        if not isinstance(self.model, FractalNetConfig):
            raise ValueError("model: must be a FractalNetConfig (see engine.fractalnet.variant_config)")
        if not self.dataset or not isinstance(self.dataset, str):
            raise ValueError("dataset: must name a dataset of engine.data.DATASETS")
        if not isinstance(self.epochs, int) or not 1 <= self.epochs <= 10_000:
            raise ValueError(f"epochs: must be an integer in 1..10000, got {self.epochs}")
        if not isinstance(self.batch_size, int) or not 2 <= self.batch_size <= 65_536:
            raise ValueError(f"batch_size: must be an integer in 2..65536, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0.0 < self.lr <= 10.0:
            raise ValueError(f"lr: must be in (0, 10], got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum: must be in [0, 1), got {self.momentum}")
        if not 0.0 <= self.weight_decay < 1.0:
            raise ValueError(f"weight_decay: must be in [0, 1), got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: must be one of {sorted(SCHEDULES)}, got {self.schedule!r}")
        if not 0.0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs: must be in [0, epochs={self.epochs}], got {self.warmup_epochs}")
        if any(not 0.0 < m < 1.0 for m in self.milestones):
            raise ValueError(f"milestones: fractions of the run, each in (0, 1), got {self.milestones}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma: must be in (0, 1], got {self.gamma}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing: must be in [0, 1), got {self.label_smoothing}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.eval_batch_size, int) or self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size: must be an integer >= 1, got {self.eval_batch_size}")
        if not isinstance(self.bn_calibration, int) or not 0 <= self.bn_calibration <= 1_000_000:
            raise ValueError(f"bn_calibration: must be an integer in 0..1000000 images, got {self.bn_calibration}")
        if not isinstance(self.log_every, int) or self.log_every < 1:
            raise ValueError(f"log_every: must be an integer >= 1, got {self.log_every}")
        for name in ("max_train", "max_test", "image_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name}: must be None or an integer >= 1, got {v}")

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


# --------------------------------------------------------------------------------------------------------------
# Small pieces
# --------------------------------------------------------------------------------------------------------------


def load_data(spec: TrainSpec):
    """The dataset named by ``spec`` (built-in or a user's file), via :func:`engine.data.load_dataset`."""
    from engine.data import load_dataset

    return load_dataset(
        spec.dataset, path=spec.dataset_path, seed=spec.data_seed, image_size=spec.image_size,
        max_train=spec.max_train, max_test=spec.max_test,
    )


def resolved_config(spec: TrainSpec, num_classes: int, in_channels: int) -> FractalNetConfig:
    return dataclasses.replace(spec.model, num_classes=num_classes, in_channels=in_channels)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches plus the remainder, except a remainder of one (batch norm cannot train on one sample)."""
    steps = n_train // batch_size
    rest = n_train - steps * batch_size
    return max(1, steps + (1 if rest >= 2 else 0))


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


def _autocast(device: torch.device, precision: str):
    if precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    ):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _precision_used(device: torch.device, precision: str) -> str:
    if precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    ):
        return "bf16"
    return "fp32"


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
def _threads(threads: int | str | None):
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


def as_image_batch(images: Any, in_channels: int | None = None) -> torch.Tensor:
    """Images as a float (N, C, H, W) tensor in [0, 1]; accepts (H, W), (C, H, W), (N, C, H, W), uint8 or float."""
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    t = t.float()
    if t.dim() == 2:
        t = t[None, None]
    elif t.dim() == 3:
        t = t[None]
    if t.dim() != 4:
        raise ValueError(f"images: expected (H, W), (C, H, W) or (N, C, H, W), got shape {tuple(t.shape)}")
    if in_channels is not None and t.shape[1] != in_channels:
        raise ValueError(f"images: the model takes {in_channels} channel(s), got {t.shape[1]}")
    if t.numel() and (not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1):
        raise ValueError("images: pixel values must be finite and in [0, 1] (or uint8 in 0..255)")
    return t


# --------------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def predict_logits(
    model: FractalNet, images: Any, column: int | None = None, batch_size: int = 500,
    device: str | torch.device | None = None, precision: str = "fp32",
) -> torch.Tensor:
    """Logits (float32, on the CPU) of an evaluation-mode pass; ``column=k`` runs column k alone."""
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    x = as_image_batch(images, model.config.in_channels)
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(x), batch_size):
            with _autocast(dev, precision):
                out.append(model(x[i:i + batch_size].to(dev), column=column).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, model.config.num_classes)


def evaluate(
    model: FractalNet, images: Any, labels: Any, column: int | None = None, batch_size: int = 500,
    device: str | torch.device | None = None, precision: str = "fp32",
) -> dict:
    """``{"loss", "accuracy"}`` of the full net (or column ``column`` alone) on a labelled set."""
    logits = predict_logits(model, images, column, batch_size, device, precision)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return {
        "loss": float(F.cross_entropy(logits, y)),
        "accuracy": float((logits.argmax(1) == y).float().mean()),
    }


def confusion_matrix(
    model: FractalNet, images: Any, labels: Any, column: int | None = None, batch_size: int = 500,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Counts ``[true class, predicted class]`` (int64, K x K)."""
    k = model.config.num_classes
    pred = predict_logits(model, images, column, batch_size, device).argmax(1).numpy()
    y = np.asarray(labels, dtype=np.int64)
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(np.int64)


def saliency_map(
    model: FractalNet, image: Any, target: int | None = None, column: int | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """Where the prediction is sensitive: |d logit_target / d pixel|, max over channels, scaled to [0, 1].

    Returns ``{"saliency": (H, W) float32 array, "target", "predicted", "probabilities"}``; ``target`` defaults
    to the predicted class (Simonyan et al. 2014, the plain gradient map).
    """
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    x = as_image_batch(image, model.config.in_channels)
    if len(x) != 1:
        raise ValueError(f"image: saliency takes one image, got a batch of {len(x)}")
    x = x.to(dev).requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        logits = model(x, column=column)
        probs = torch.softmax(logits.detach().float(), 1)[0].cpu()
        pred = int(probs.argmax())
        tgt = pred if target is None else int(target)
        if not 0 <= tgt < model.config.num_classes:
            raise ValueError(f"target: must be a class index in 0..{model.config.num_classes - 1}, got {target}")
        (grad,) = torch.autograd.grad(logits[0, tgt], x)
    finally:
        model.train(was_training)
    sal = grad[0].abs().amax(0).float().cpu().numpy()
    peak = float(sal.max())
    if peak > 0:
        sal = sal / peak
    return {"saliency": sal.astype(np.float32), "target": tgt, "predicted": pred, "probabilities": probs.numpy()}


# --------------------------------------------------------------------------------------------------------------
# Checkpoints (safetensors + JSON; never pickle)
# --------------------------------------------------------------------------------------------------------------


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_checkpoint(
    directory: str | Path, model: FractalNet, classes: Sequence[str], image_size: Sequence[int],
    extra: dict | None = None,
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (enough to rebuild and run the model) into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _atomic_save_safetensors(d / MODEL_FILE, dict(model.state_dict()), {"format": CHECKPOINT_FORMAT})
    cfg = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": model.config.to_dict(),
        "classes": list(classes),
        "image_size": [int(s) for s in image_size],
        **(extra or {}),
    }
    _atomic_write_bytes(d / CONFIG_FILE, json.dumps(cfg, indent=2, sort_keys=True).encode())
    return d


@dataclass
class Checkpoint:
    model: FractalNet
    config: FractalNetConfig
    classes: list[str]
    image_size: tuple[int, int]
    meta: dict
    path: Path


def read_checkpoint_config(directory: str | Path) -> dict:
    d = Path(directory)
    path = d / CONFIG_FILE
    if not path.is_file() or not (d / MODEL_FILE).is_file():
        raise ValueError(f"checkpoint: {d} needs {MODEL_FILE} and {CONFIG_FILE}")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"checkpoint: {path} is not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT or "model" not in meta:
        raise ValueError(f"checkpoint: {path} is not a FractalNet checkpoint config (format {CHECKPOINT_FORMAT})")
    return meta


def load_checkpoint(directory: str | Path, device: str | torch.device | None = None) -> Checkpoint:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` (no unpickling; strict keys)."""
    from safetensors.torch import load_file

    d = Path(directory)
    meta = read_checkpoint_config(d)
    config = FractalNetConfig.from_dict(meta["model"])
    dev = resolve_device(device)
    model = FractalNet(config)
    try:
        state = load_file(str(d / MODEL_FILE))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"checkpoint: {d / MODEL_FILE} is not a readable safetensors file ({exc})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint: weights do not match the config (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})"
        )
    model.to(dev).eval()
    classes = [str(c) for c in meta.get("classes", [str(i) for i in range(config.num_classes)])]
    size = tuple(int(s) for s in meta.get("image_size", (0, 0)))
    return Checkpoint(model, config, classes, size, meta, d)  # type: ignore[arg-type]


def predict(
    checkpoint_dir: str | Path, images: Any, column: int | None = None, device: str | torch.device | None = None,
    batch_size: int = 500,
) -> np.ndarray:
    """Class probabilities (N, K) of a checkpoint on images in [0, 1] (or uint8) of the training size."""
    ck = load_checkpoint(checkpoint_dir, device)
    logits = predict_logits(ck.model, images, column, batch_size)
    return torch.softmax(logits, 1).numpy()


def ensemble_predict(
    checkpoint_dirs: Sequence[str | Path], images: Any, column: int | None = None,
    device: str | torch.device | None = None, batch_size: int = 500,
) -> np.ndarray:
    """The average of several checkpoints' class probabilities (they must share the class list)."""
    if not checkpoint_dirs:
        raise ValueError("checkpoint_dirs: give at least one checkpoint directory")
    total = None
    classes = None
    for d in checkpoint_dirs:
        ck = load_checkpoint(d, device)
        if classes is None:
            classes = ck.classes
        elif ck.classes != classes:
            raise ValueError(f"checkpoint_dirs: {d} predicts classes {ck.classes}, the first one {classes}")
        p = torch.softmax(predict_logits(ck.model, images, column, batch_size), 1).numpy()
        total = p if total is None else total + p
    return total / len(checkpoint_dirs)


# --------------------------------------------------------------------------------------------------------------
# Trainer state (optimizer + RNG + position), for exact resume
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Position:
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # steps done inside the current epoch
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_correct: float = 0.0
    epoch_seen: int = 0
    epoch_time: float = 0.0
    train_time: float = 0.0
    images_seen: int = 0


def _save_trainer_state(
    d: Path, optimizer: torch.optim.Optimizer, pos: _Position, gens: dict[str, torch.Generator],
    spec: TrainSpec, device: torch.device,
) -> None:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim/{idx}/{key}"] = val
            else:
                scalars.setdefault(str(idx), {})[key] = val
    tensors["rng/torch"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng/cuda"] = torch.cuda.get_rng_state(device)
    for name, g in gens.items():
        tensors[f"rng/{name}"] = g.get_state()
    meta = {
        "position": dataclasses.asdict(pos),
        "param_groups": sd["param_groups"],
        "optimizer": spec.optimizer,
        "scalars": scalars,
    }
    _atomic_save_safetensors(d / STATE_FILE, tensors, {"format": CHECKPOINT_FORMAT, "trainer": json.dumps(meta)})


def _load_trainer_state(
    d: Path, optimizer: torch.optim.Optimizer, gens: dict[str, torch.Generator], spec: TrainSpec,
    device: torch.device,
) -> _Position:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = d / STATE_FILE
    if not path.is_file():
        raise ValueError(f"resume_from: {d} has no {STATE_FILE} (only a finished model); cannot resume training")
    with safe_open(str(path), "pt") as f:
        meta = json.loads((f.metadata() or {}).get("trainer", "{}"))
    tensors = load_file(str(path))
    if meta.get("optimizer") != spec.optimizer:
        raise ValueError(
            f"optimizer: the checkpoint was trained with {meta.get('optimizer')!r}, the spec asks {spec.optimizer!r}"
        )
    state: dict[int, dict] = {}
    for key, val in tensors.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = val.to(device) if name != "step" else val
    for idx, sc in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(sc)
    groups = meta["param_groups"]
    cur = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in cur]:
        raise ValueError("resume_from: the optimizer state does not match this model's parameters")
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng/torch"])
    if device.type == "cuda" and "rng/cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng/cuda"], device)
    for name, g in gens.items():
        if f"rng/{name}" in tensors:
            g.set_state(tensors[f"rng/{name}"])
    return _Position(**meta["position"])


# --------------------------------------------------------------------------------------------------------------
# Metrics files
# --------------------------------------------------------------------------------------------------------------


def _metric_columns(rows: list[dict]) -> list[str]:
    first = ["kind", "epoch", "step"]
    seen: list[str] = []
    for r in rows:
        for k in r:
            if k not in first and k not in seen:
                seen.append(k)
    return first + seen


def metrics_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_metric_columns(rows), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def read_metrics_csv(path: str | Path) -> list[dict]:
    """Rows of a ``metrics.csv`` with numbers parsed and blanks dropped (what ``train`` appended)."""
    p = Path(path)
    if not p.is_file():
        return []
    rows = []
    with p.open(newline="") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {}
            for k, v in raw.items():
                if v is None or v == "":
                    continue
                if k in ("kind", "drop"):
                    row[k] = v
                elif k == "step":
                    row[k] = int(float(v))
                else:
                    row[k] = float(v)
            rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------------------


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
    written by this function. ``dataset`` (an :class:`engine.data.ImageDataset`) skips loading ``spec``'s data.
    """
    t_start = time.perf_counter()
    dev = resolve_device(device)
    ds = dataset if dataset is not None else load_data(spec)
    config = resolved_config(spec, ds.num_classes, ds.in_channels)
    precision = _precision_used(dev, spec.precision)

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
    pos = _Position()

    resume = resume_from if resume_from is not None else spec.resume_from
    if resume:
        rd = Path(resume)
        ck = load_checkpoint(rd, dev)
        if ck.config != config:
            raise ValueError(
                f"resume_from: the checkpoint's model {ck.config.to_json()} differs from this run's {config.to_json()}"
            )
        model.load_state_dict(ck.model.state_dict())
        pos = _load_trainer_state(rd, optimizer, gens, spec, dev)
        history = read_metrics_csv(rd / METRICS_FILE)
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
        _save_trainer_state(out_dir, optimizer, pos, gens, spec, dev)
        _atomic_write_bytes(out_dir / METRICS_FILE, metrics_csv(history).encode())

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
                from engine.data import augment_batch

                xb = augment_batch(xb, aug, gens["augment"])
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            lr = lr_at(spec, pos.global_step, total_steps, per_epoch)
            for g in optimizer.param_groups:
                g["lr"] = lr
            with _autocast(dev, precision):
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


# --------------------------------------------------------------------------------------------------------------
# Task function (job kind "fractalnet_train")
# --------------------------------------------------------------------------------------------------------------


def run_to_dir(
    spec: TrainSpec, out_dir: str | Path, progress=None, cancel=None, device=None, threads: int | str | None = "auto",
) -> None:
    """Train ``spec`` and write model.safetensors, config.json, trainer_state.safetensors, metrics.csv,
    summary.json and spec.json into ``out_dir``. ``progress(fraction, info)`` receives every metrics row (the
    page draws its live curves from them). On cancel the last state is left in ``out_dir`` (a checkpoint to
    resume from, via ``TrainSpec(resume_from=out_dir)``) and :class:`Cancelled` is raised. ``threads``: torch
    CPU threads (default ``"auto"``, see :func:`auto_threads`)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(d / SPEC_FILE, spec.to_json(indent=2).encode())
    with _threads(threads):
        result = train(spec, callback=progress, cancel=cancel, device=device, checkpoint_dir=d)
    _atomic_write_bytes(d / METRICS_FILE, metrics_csv(result.history).encode())
    _atomic_write_bytes(d / SUMMARY_FILE, json.dumps(result.summary, indent=2).encode())
    if progress is not None:
        progress(1.0, {"kind": "done", "accuracy": result.summary["accuracy"]["full"],
                       "accuracy_columns": result.summary["accuracy"]["columns"]})


# --------------------------------------------------------------------------------------------------------------
# CLI: python -m engine.fractalnet train|evaluate|predict
# --------------------------------------------------------------------------------------------------------------


class _Flag:
    """A cancel object set by Ctrl-C, so the CLI leaves a checkpoint behind like the job runner does."""

    def __init__(self) -> None:
        self.flag = False

    def is_set(self) -> bool:
        return self.flag


def load_image(
    source: Any, in_channels: int, image_size: Sequence[int], invert: bool = False
) -> np.ndarray:
    """One image as a (1, C, H, W) float32 batch in [0, 1] at the model's size and channels.

    ``source``: a file path (.npy read without pickle, or any image PIL opens), raw file bytes, a PIL image, or
    an array ((H, W), (C, H, W) or (H, W, C); uint8 or floats in [0, 1]). ``invert`` flips dark-on-light
    drawings to light-on-dark, the way digits and MNIST store ink.
    """
    from PIL import Image

    h, w = int(image_size[0]), int(image_size[1])
    if isinstance(source, (str, Path)) and str(source).endswith(".npy"):
        source = np.load(source, allow_pickle=False)
    if isinstance(source, (bytes, bytearray)):
        try:
            source = Image.open(io.BytesIO(source))
            source.load()
        except Exception as exc:  # PIL raises many types for unreadable data
            raise ValueError(f"image: not a readable image file ({exc})") from None
    elif isinstance(source, (str, Path)):
        try:
            source = Image.open(source)
            source.load()
        except Exception as exc:
            raise ValueError(f"image: {source} is not a readable image file ({exc})") from None
    if isinstance(source, Image.Image):
        im = source.convert("L" if in_channels == 1 else "RGB").resize((w, h), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    else:
        arr = np.asarray(source)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        arr = arr.astype(np.float32)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 2:
            arr = arr[None]
        elif arr.ndim == 3 and arr.shape[0] not in (1, 3) and arr.shape[-1] in (1, 3):
            arr = arr.transpose(2, 0, 1)
        if arr.ndim != 3:
            raise ValueError(f"image: expected one image (H, W), (C, H, W) or (H, W, C), got shape {arr.shape}")
        t = torch.from_numpy(np.ascontiguousarray(arr))[None]
        if t.shape[1] != in_channels:
            t = t.mean(1, keepdim=True) if in_channels == 1 else t.expand(-1, in_channels, -1, -1)
        if tuple(t.shape[-2:]) != (h, w):
            t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
        arr = t[0].numpy()
    arr = np.clip(arr, 0.0, 1.0)
    if invert:
        arr = 1.0 - arr
    return np.ascontiguousarray(arr[None], dtype=np.float32)


def cli_main(argv: list[str] | None = None) -> int:
    from engine.fractalnet import VARIANTS

    p = argparse.ArgumentParser(prog="python -m engine.fractalnet", description="Train and use FractalNets.")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = TrainSpec()
    t = sub.add_parser("train", help="train a variant on a dataset; writes a checkpoint and metrics to --out")
    t.add_argument("--variant", default="small", choices=list(VARIANTS))
    t.add_argument("--dataset", default=d.dataset)
    t.add_argument("--path", default=None, help="the dataset file/folder for file datasets")
    t.add_argument("--epochs", type=int, default=d.epochs)
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--optimizer", default=d.optimizer, choices=list(OPTIMIZERS))
    t.add_argument("--lr", type=float, default=None, help=f"default: {DEFAULT_LR}")
    t.add_argument("--weight-decay", type=float, default=d.weight_decay)
    t.add_argument("--schedule", default=d.schedule, choices=list(SCHEDULES))
    t.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    t.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    t.add_argument("--join", default=None, choices=["mean", "learned"])
    t.add_argument("--local-drop", type=float, default=None)
    t.add_argument("--global-ratio", type=float, default=None)
    t.add_argument("--no-drop-path", action="store_true")
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--max-train", type=int, default=None)
    t.add_argument("--max-test", type=int, default=None)
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--precision", default=d.precision, choices=list(PRECISIONS))
    t.add_argument("--device", default=None)
    t.add_argument("--threads", default="auto", help="torch CPU threads, or 'auto' (1 when the machine is busy)")
    t.add_argument("--resume", default=None, help="a checkpoint directory to continue")
    t.add_argument("--out", required=True)
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
    a = p.parse_args(argv)

    if a.cmd == "train":
        overrides: dict[str, Any] = {}
        if a.join:
            overrides["join"] = a.join
        if a.local_drop is not None:
            overrides["local_drop"] = a.local_drop
        if a.global_ratio is not None:
            overrides["global_ratio"] = a.global_ratio
        if a.no_drop_path:
            overrides["drop_path"] = False
        spec = TrainSpec(
            model=variant_config(a.variant, **overrides), dataset=a.dataset, dataset_path=a.path,
            epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer,
            lr=a.lr if a.lr is not None else DEFAULT_LR[a.optimizer],
            weight_decay=a.weight_decay, schedule=a.schedule, warmup_epochs=min(a.warmup_epochs, a.epochs),
            label_smoothing=a.label_smoothing, augment=not a.no_augment, max_train=a.max_train,
            max_test=a.max_test, seed=a.seed, precision=a.precision, resume_from=a.resume,
        )
        from tqdm import tqdm

        bar = tqdm(total=100.0, unit="%", desc=f"{a.variant} on {a.dataset}", dynamic_ncols=True,
                   bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}% [{elapsed}<{remaining}{postfix}]")
        flag = _Flag()

        def progress(fraction: float, info: dict) -> None:
            bar.n = round(100.0 * fraction, 2)
            if info.get("kind") == "step":
                bar.set_postfix(loss=f"{info['loss']:.3f}", acc=f"{info['accuracy']:.3f}",
                                img_s=f"{info['images_per_s']:.0f}", refresh=False)
            elif info.get("kind") == "epoch":
                cols = " ".join(
                    f"{info[k]:.4f}" for k in sorted(info) if k.startswith("val_accuracy_col")
                )
                bar.write(f"epoch {int(info['epoch'])}: train loss {info['train_loss']:.4f} "
                          f"val acc {info['val_accuracy']:.4f} columns [{cols}]")
            bar.refresh()

        t0 = time.perf_counter()
        try:
            import signal

            signal.signal(signal.SIGINT, lambda *_: setattr(flag, "flag", True))
            threads = a.threads if a.threads == "auto" else int(a.threads)
            print(f"torch threads: {auto_threads() if threads == 'auto' else threads} ({a.threads})")
            run_to_dir(spec, a.out, progress=progress, cancel=flag, device=a.device, threads=threads)
        except Cancelled as exc:
            bar.close()
            print(f"{exc}; checkpoint left in {a.out} (resume with --resume {a.out})")
            return 130
        bar.close()
        summary = json.loads((Path(a.out) / SUMMARY_FILE).read_text())
        acc = summary["accuracy"]
        print(f"test accuracy: full net {acc['full']:.4f}; columns "
              + ", ".join(f"{k}: {v:.4f}" for k, v in enumerate(acc["columns"])))
        print(f"wall time {time.perf_counter() - t0:.1f} s (training {summary['timings']['train_s']:.1f} s, "
              f"{summary['timings']['train_images_per_s']:.0f} images/s); written to {a.out}")
        return 0

    if a.cmd == "evaluate":
        ck = load_checkpoint(a.checkpoint, a.device)
        trained = ck.meta.get("spec", {})
        name = a.dataset or trained.get("dataset", "digits")
        path = a.path if a.dataset else (a.path or trained.get("dataset_path"))
        from engine.data import load_dataset

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

    ck = load_checkpoint(a.checkpoint, a.device)
    images = np.concatenate([load_image(f, ck.config.in_channels, ck.image_size, a.invert) for f in a.images])
    dirs = [a.checkpoint, *a.ensemble]
    probs = ensemble_predict(dirs, images, a.column, a.device) if a.ensemble else predict(
        a.checkpoint, images, a.column, a.device)
    for f, pr in zip(a.images, probs):
        top = np.argsort(-pr)[: a.top]
        print(f"{f}: " + ", ".join(f"{ck.classes[i]} {pr[i]:.3f}" for i in top))
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
