"""What a FractalNet costs: parameters and depth per column, FLOPs (with drop-path's savings), steps and speed.

One copy for the CLI, the page's estimate and the variant table, so a number shown before a run is the number
the model will spend. FLOPs count the convs and the classifier (2 x multiply-accumulates); batch norm, ReLU,
pooling and joins are left out (a few percent). Everything but :func:`measure_speed` is computed from the
block layout, never by building the model, so pricing the largest accepted config is instant.
"""

from __future__ import annotations

import statistics
import time

import torch

from engine.device import resolve_device
from engine.fractalnet.model import (FractalNet, FractalNetConfig, _column_in_block, _Layout, _period, needed,
                                     parameter_counts, sample_drop_path)
from engine.specs import check_value, short_repr

MAX_IMAGE_SIDE = 65_536  # pixels per side an estimate accepts: far past any image here, short of absurd
#: Estimated training activations one run may hold (see :func:`activation_bytes`); a larger batch or image
#: is refused before the model is built.
MAX_ACTIVATION_BYTES = 32 * 2**30


def check_image_size(config: FractalNetConfig, image_size: object) -> tuple[int, int]:
    """``(height, width)`` as two integers the network's poolings survive, or ``ValueError("image_size: …")``."""
    lo = config.min_input_size
    if isinstance(image_size, (str, bytes)) or not hasattr(image_size, "__len__") or len(image_size) != 2:
        raise ValueError(f"image_size: must be (height, width), got {short_repr(image_size)}")
    h, w = (check_value("image_size", v, int, range=(1, MAX_IMAGE_SIDE)) for v in image_size)
    if min(h, w) < lo:
        raise ValueError(f"image_size: {h}x{w} images are too small for {config.blocks} blocks of 2x2 pooling; "
                         f"allowed {lo}..{MAX_IMAGE_SIDE} pixels per side")
    return h, w


def activation_bytes(config: FractalNetConfig, image_size: tuple[int, int], batch_size: int) -> int:
    """Estimated bytes of the activations a training step keeps for backward: two float32 maps (conv and batch
    norm; the ReLU is in place) per conv of every path, all paths active (drop-path's worst case)."""
    h, w = check_image_size(config, image_size)
    per_image = sum((2**C - 1) * cout * (h // 2**b) * (w // 2**b)
                    for b, (cout, C) in enumerate(zip(config.filters, config.block_columns)))
    return 2 * 4 * per_image * int(batch_size)


def check_activation_memory(config: FractalNetConfig, image_size: tuple[int, int], batch_size: int) -> None:
    """``ValueError("batch_size: …")`` when a training step of this model would hold more than
    :data:`MAX_ACTIVATION_BYTES` of activations."""
    need = activation_bytes(config, image_size, batch_size)
    if need > MAX_ACTIVATION_BYTES:
        h, w = image_size
        raise ValueError(
            f"batch_size: {batch_size} images of {h}x{w} need about {need / 2**30:,.1f} GiB of activations in this "
            f"model; allowed at most {MAX_ACTIVATION_BYTES / 2**30:.0f} GiB (use a smaller batch, image or model)")

def column_depths(config: FractalNetConfig) -> list[int]:
    """Number of conv layers on column k's path through the whole network, k = 0 (shallowest) .. deepest."""
    return [
        sum(2 ** _column_in_block(k, C) for C in config.block_columns) for k in range(config.max_columns)
    ]


def parameter_count(config: FractalNetConfig) -> int:
    """Trainable parameters of the whole network (counted from the layout: no module is built)."""
    return parameter_counts(config)[0]


def column_parameter_counts(config: FractalNetConfig) -> list[int]:
    """Parameters column k alone uses (its convs in every block, plus the head), k = 0 .. deepest."""
    return parameter_counts(config)[1]


def _conv_macs(config: FractalNetConfig, image_size: tuple[int, int]) -> list[dict[tuple[int, int], int]]:
    """Multiply-accumulates of every conv, per block, keyed like ``FractalBlock.needed``: (column, position)."""
    h, w = check_image_size(config, image_size)
    out = []
    cin = config.in_channels
    for b, (cout, C) in enumerate(zip(config.filters, config.block_columns)):
        hw = (h // 2**b) * (w // 2**b)
        macs = {}
        for c in range(C):
            for k in range(2**c):
                macs[(c, (k + 1) * _period(C, c))] = hw * 9 * (cin if k == 0 else cout) * cout
        out.append(macs)
        cin = cout
    return out


def forward_flops(config: FractalNetConfig, image_size: tuple[int, int], column: int | None = None) -> int:
    """FLOPs (2 x multiply-accumulates of the convs and the classifier) of one image's forward pass, full net
    or ``column`` alone. Batch norm, ReLU, pooling and joins are left out (a few percent)."""
    per_block = _conv_macs(config, image_size)
    total = config.filters[-1] * config.num_classes
    for macs, C in zip(per_block, config.block_columns):
        if column is None:
            total += sum(macs.values())
        else:
            k = _column_in_block(column % config.max_columns, C)
            total += sum(v for (c, _), v in macs.items() if c == k)
    return 2 * total


def expected_train_flops(config: FractalNetConfig, image_size: tuple[int, int], samples: int = 256) -> float:
    """Expected FLOPs of one training image (forward + backward ~ 3 x forward) under drop-path, where dropped
    paths are not computed: averaged over ``samples`` subnetworks drawn with a fixed seed."""
    if not config.drop_path:
        return 3.0 * forward_flops(config, image_size)
    layouts = [_Layout.of(C) for C in config.block_columns]
    per_block = _conv_macs(config, image_size)
    g = torch.Generator().manual_seed(0)
    total = 0
    for _ in range(samples):
        sample = sample_drop_path(config, g, layouts)
        for layout, active, macs in zip(layouts, sample.active, per_block):
            need, _ = needed(layout, active)
            total += sum(macs[key] for key in need)
    head = config.filters[-1] * config.num_classes
    return 3.0 * 2 * (total / samples + head)


def describe(config: FractalNetConfig, image_size: tuple[int, int] | None = None) -> dict:
    """Per-column depth and parameters plus totals (and FLOPs, given an image size): what the page shows
    beside the block diagram and uses for its cost estimate."""
    out = {
        "columns": config.max_columns,
        "blocks": config.blocks,
        "column_depths": column_depths(config),
        "column_parameters": column_parameter_counts(config),
        "parameters": parameter_count(config),
        "convs_per_block": [2**C - 1 for C in config.block_columns],
        "min_input_size": config.min_input_size,
    }
    if image_size is not None:
        out["forward_flops"] = forward_flops(config, image_size)
        out["column_forward_flops"] = [forward_flops(config, image_size, k) for k in range(config.max_columns)]
        out["expected_train_flops"] = expected_train_flops(config, image_size)
    return out


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches plus the remainder, except a remainder of one (batch norm cannot train on one sample)."""
    steps = n_train // batch_size
    rest = n_train - steps * batch_size
    return max(1, steps + (1 if rest >= 2 else 0))


def training_cost(config: FractalNetConfig, image_size: tuple[int, int], n_train: int, n_test: int, epochs: int,
                  batch_size: int) -> dict:
    """A run's cost before it starts: optimiser steps, and FLOPs of training (drop-path's expected subnetwork,
    forward + backward) plus each epoch's test pass of the full net and of every column alone."""
    per_epoch = steps_per_epoch(n_train, batch_size)
    forward = forward_flops(config, image_size)
    columns = [forward_flops(config, image_size, k) for k in range(config.max_columns)]
    train_flops = expected_train_flops(config, image_size) * n_train * epochs
    eval_flops = float(forward + sum(columns)) * n_test * epochs
    return {"forward_flops": forward, "steps_per_epoch": per_epoch, "steps": per_epoch * epochs,
            "train_flops": train_flops, "eval_flops": eval_flops, "total_flops": train_flops + eval_flops}


def measure_speed(config: FractalNetConfig, image_shape: tuple[int, int, int], batch: int, device=None,
                  steps: int = 3) -> float:
    """Training images/s of this model here: ``steps`` timed SGD steps (drop-path on, as in training) after one
    warm-up step, median time per step."""
    check_activation_memory(config, image_shape[1:], batch)
    dev = resolve_device(device)
    model = FractalNet(config).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((batch, *image_shape), generator=gen).to(dev)
    y = torch.randint(0, config.num_classes, (batch,), generator=gen).to(dev)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x, generator=gen), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return batch / float(statistics.median(times))
