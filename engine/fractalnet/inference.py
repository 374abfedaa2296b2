"""Using a trained FractalNet: logits, accuracy, confusion, saliency, and predictions from checkpoints.

Every function takes the full net or one column alone (``column=k``), because the paper's claim is about what
each column learned by itself.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from engine.device import resolve_device
from engine.fractalnet.checkpoint import load_checkpoint
from engine.fractalnet.model import FractalNet
from engine.png import png_bytes


def precision_used(device: torch.device, precision: str) -> str:
    """What ``precision`` ("auto", "fp32", "bf16") means on ``device``: bf16 where asked or where CUDA has it."""
    if precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    ):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """A bfloat16 autocast context where :func:`precision_used` says bf16, else a no-op."""
    if precision_used(device, precision) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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


def _labels(labels: Any, n: int, num_classes: int) -> np.ndarray:
    """``labels`` as int64, one per image, each a class of the model (a dataset with more classes than the
    checkpoint, e.g. CIFAR-100 for a CIFAR-10 net, would otherwise index past the logits)."""
    y = np.asarray(labels)
    if y.shape != (n,) or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"labels: need {n} integer class labels, one per image, got shape {y.shape} ({y.dtype})")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"checkpoint: this checkpoint does not fit the data: its model predicts {num_classes} "
                         f"classes, the labels run from {y.min()} to {y.max()}")
    return y.astype(np.int64)


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
            with autocast(dev, precision):
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
    y = torch.from_numpy(_labels(labels, len(logits), model.config.num_classes))
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
    y = _labels(labels, len(pred), k)
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


def image_rgb(image: np.ndarray, target: int = 168) -> np.ndarray:
    """A (C, H, W) image in [0, 1] as uint8 RGB, enlarged (nearest neighbour) to about ``target`` pixels."""
    a = np.transpose(np.repeat(image, 3, 0) if image.shape[0] == 1 else image, (1, 2, 0))
    return _enlarge((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8), target)


def saliency_rgb(saliency: np.ndarray, target: int = 168) -> np.ndarray:
    """A saliency map in [0, 1] as a dark-blue-to-yellow uint8 RGB picture, enlarged like :func:`image_rgb`."""
    s = np.clip(saliency, 0, 1)
    rgb = np.stack([np.clip(1.6 * s, 0, 1), np.clip(1.6 * s - 0.5, 0, 1) ** 1.2, np.clip(0.5 - s, 0, 1) * 0.6], -1)
    return _enlarge((rgb * 255).astype(np.uint8), target)


def saliency_png(image: np.ndarray, saliency: np.ndarray) -> bytes:
    """The image and its saliency map side by side, as PNG bytes (the page's download)."""
    pic, heat = image_rgb(image), saliency_rgb(saliency)
    gap = np.full((pic.shape[0], 8, 3), 255, np.uint8)
    return png_bytes(np.concatenate([pic, gap, heat], axis=1))


def _enlarge(rgb: np.ndarray, target: int) -> np.ndarray:
    k = max(1, target // max(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, k, 0), k, 1)
