"""Training a Kronecker net beside its baselines: same data, same batch order, same optimiser, one table.

A fair comparison is the point of the lab, so every model sees identical batches from ``spec.seed`` with Adam at
``spec.lr`` (gradients clipped to norm 1), and the learned edge weights are read back for the adjacency view.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.device import resolve_device
from engine.errors import Cancelled
from engine.kronecker.net import MODEL_DESCRIPTIONS, KroneckerNet, build_models
from engine.kronecker.spec import KronTrainSpec
from engine.kronecker.tasks import TASKS


@dataclass
class CompareResult:
    """What :func:`train_compare` returns: the table, the curves, the learned edge weights and the models."""

    table: list[dict[str, Any]]
    curves: dict[str, list[dict[str, Any]]]
    test_curves: dict[str, list[dict[str, Any]]]
    edge_weights: dict[str, dict[str, Any]]
    models: dict[str, KroneckerNet]
    task: str


TABLE_COLUMNS = ("model", "parameters", "layer_applications", "sequential_steps", "width", "test_accuracy",
                 "final_train_loss", "train_time_s", "description")


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(-1) == y).float().mean())


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate(model: KroneckerNet, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    """Accuracy over ``(x, y)``: fraction of examples, or of output tokens for per-token tasks."""
    model.eval()
    hits = total = 0
    for i in range(0, len(x), batch):
        pred = model(x[i:i + batch]).argmax(-1)
        hits += int((pred == y[i:i + batch]).sum())
        total += y[i:i + batch].numel()
    model.train()
    return hits / max(total, 1)


@torch.no_grad()
def learned_edge_weights(model: KroneckerNet, x: torch.Tensor, batch: int = 512) -> dict[str, Any]:
    """Each edge's weight as ``rows``/``cols``/``weights`` lists (to draw on the adjacency).

    none: the adjacency values; static: the learned scalars; dynamic: the gate's weight averaged over the
    examples (and tokens) of ``x``, with its standard deviation in ``std``.
    """
    plan = model.plan
    out = {"kind": model.edge_weights, "nodes": plan.n, "rows": plan.edge_dst.tolist(),
           "cols": plan.edge_src.tolist()}
    if model.edge_weights != "dynamic":
        out["weights"] = model._static_weights(torch.arange(plan.edges)).cpu().tolist()
        return out
    model.eval()
    parts = []
    for i in range(0, len(x), batch):
        _, w = model(x[i:i + batch], return_edge_weights=True)
        parts.append(w.reshape(plan.edges, -1))
    model.train()
    w = torch.cat(parts, dim=1) if parts else torch.zeros(plan.edges, 0)
    out["weights"] = w.mean(1).cpu().tolist()
    out["std"] = w.std(1).cpu().tolist() if w.shape[1] > 1 else [0.0] * plan.edges
    return out


SMALL_WIDTH = 128  # at or below this width, CPU training runs single-threaded (see train_compare)


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    """Temporarily set torch's intra-op thread count (``None``: leave it)."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train_compare(spec: KronTrainSpec, progress: Callable[..., Any] | None = None, cancel: Any = None,
                  device: str | torch.device | None = None) -> CompareResult:
    """Train the Kronecker net and the chosen baselines on ``spec.task``, one after the other, and compare them.

    Every model sees the same data in the same batch order (from ``spec.seed``) with Adam at ``spec.lr``
    (gradients clipped to norm 1). ``progress(fraction, info)`` gets ``{"model", "step", "epoch", "loss",
    "accuracy"}`` (train-batch values, for live curves; at most ~500 points per model) and, after each epoch,
    ``{"model", "step", "epoch", "test_accuracy"}``. Raises :class:`~engine.errors.Cancelled` when ``cancel``
    is set.

    On the CPU, nets of width <= ``SMALL_WIDTH`` train on one thread: their ops are a few thousand multiply-adds
    each, too small to split, and extra threads only spin-wait. On this 2-core machine, loaded by other work, a
    tied 9-node step took 24 ms on one thread and 432 ms on two.
    """
    dev = resolve_device(device)
    with _cpu_threads(1 if dev.type == "cpu" and spec.width <= SMALL_WIDTH else None):
        return _train_compare(spec, progress, cancel, dev)


def _train_compare(spec: KronTrainSpec, progress, cancel, dev: torch.device) -> CompareResult:
    task = TASKS[spec.task]
    data = task.loader()
    xtr, ytr, xte, yte = (t.to(dev) for t in (data.x_train, data.y_train, data.x_test, data.y_test))
    models = build_models(spec, dev)
    steps_per_epoch = math.ceil(len(xtr) / spec.batch_size)
    per_model = steps_per_epoch * spec.epochs
    total_steps = per_model * len(models)
    stride = max(1, per_model // 500)
    table, curves, test_curves, edges = [], {}, {}, {}
    done = 0
    for name, model in models.items():
        gen = torch.Generator().manual_seed(spec.seed)
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
        curve, tcurve = [], []
        step, t0, epoch_losses = 0, time.perf_counter(), []
        model.train()
        for epoch in range(1, spec.epochs + 1):
            order = torch.randperm(len(xtr), generator=gen).to(dev)
            epoch_losses = []
            for i in range(0, len(xtr), spec.batch_size):
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"kron_train cancelled while training {name}")
                idx = order[i:i + spec.batch_size]
                logits = model(xtr[idx])
                loss = _loss(logits, ytr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                step += 1
                done += 1
                point = {"model": name, "step": step, "epoch": epoch, "loss": float(loss.detach()),
                         "accuracy": _accuracy(logits.detach(), ytr[idx])}
                curve.append(point)
                epoch_losses.append(point["loss"])
                if progress is not None and (step % stride == 0 or step == per_model):
                    progress(done / total_steps, point)
            acc = evaluate(model, xte, yte)
            tpoint = {"model": name, "step": step, "epoch": epoch, "test_accuracy": acc}
            tcurve.append(tpoint)
            if progress is not None:
                progress(done / total_steps, tpoint)
        elapsed = time.perf_counter() - t0
        curves[name], test_curves[name] = curve, tcurve
        if name != "sequential":
            edges[name] = learned_edge_weights(model, xte)
        table.append({"model": name, "parameters": model.parameter_breakdown()["total"],
                      "layer_applications": model.applications,
                      "sequential_steps": model.plan.running_levels, "width": model.width,
                      "test_accuracy": tcurve[-1]["test_accuracy"],
                      "final_train_loss": float(np.mean(epoch_losses)), "train_time_s": round(elapsed, 3),
                      "description": MODEL_DESCRIPTIONS[name]})
    return CompareResult(table, curves, test_curves, edges, models, spec.task)
