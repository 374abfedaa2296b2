"""Training throughput of FractalNet with drop-path: ours (dropped paths never run) vs the usual port.

Setup (issue 5): C=3, B=3, filters 32/64/64, batch 64, 3x32x32 inputs, drop-path on (local 0.15, global 50%),
SGD with Nesterov momentum. The baseline, measured in the same run on an identically initialised copy of the
same modules, does what the popular PyTorch port does: it computes *every* path of every block and drops paths
afterwards with per-sample masks (half of the batch global, one random column per sample; the rest local).

Usage: ``.venv/bin/python bench/fractalnet.py [--steps 15] [--rounds 3] [--threads N]``. Prints images/s of both
(median over rounds, rounds interleaved so a noisy neighbour hurts both alike) and the ratio. Target >= 1.5x.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.fractalnet.model import FractalBlock, FractalNet, FractalNetConfig, _ending_columns  # noqa: E402


def _per_sample_masks(
    cols: tuple[int, ...], global_cols: torch.Tensor, n_local: int, p: float, gen: torch.Generator
) -> torch.Tensor:
    """(len(cols), N) 0/1 mask: global samples keep only their column (if this join has it); local samples
    keep each input with probability 1 - p, at least one."""
    n = global_cols.numel() + n_local
    m = torch.zeros(len(cols), n)
    colt = torch.tensor(cols)
    m[:, : global_cols.numel()] = (colt[:, None] == global_cols[None, :]).float()
    keep = (torch.rand(len(cols), n_local, generator=gen) >= p).float()
    dead = keep.sum(0) == 0
    if dead.any():
        pick = torch.randint(len(cols), (int(dead.sum()),), generator=gen)
        keep[pick, dead.nonzero().flatten()] = 1.0
    m[:, global_cols.numel():] = keep
    return m


def baseline_block(block: FractalBlock, x: torch.Tensor, global_cols: torch.Tensor, n_local: int, p: float,
                   gen: torch.Generator) -> torch.Tensor:
    """Every conv of the block is computed; joins mask per sample and divide by the number kept."""
    layout = block.layout
    conv_out: dict[tuple[int, int], torch.Tensor] = {}
    join_out = {0: x}
    for d in range(1, layout.depth + 1):
        for c in _ending_columns(layout.columns, d):
            src = layout.input_of(c, d)
            inp = join_out[src] if (src == 0 or src in layout.joins) else conv_out[(c, src)]
            conv_out[(c, d)] = block.paths[c][d // 2 ** (layout.columns - 1 - c) - 1](inp)
        if d in layout.joins:
            cols = layout.joins[d]
            ins = [conv_out[(c, d)] for c in cols]
            if d == layout.depth:
                ins = [F.max_pool2d(t, 2) for t in ins]
            if len(ins) == 1:
                join_out[d] = ins[0]
                continue
            gc = global_cols.clamp(max=layout.columns - 1)
            m = _per_sample_masks(cols, gc, n_local, p, gen).to(x.dtype)
            stacked = torch.stack(ins)  # (n_in, N, C, H, W)
            alive = m.sum(0).clamp(min=1.0)
            join_out[d] = (stacked * m[:, :, None, None, None]).sum(0) / alive[:, None, None, None]
    return join_out[layout.depth]


def baseline_forward(model: FractalNet, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    cfg = model.config
    n_global = int(round(x.shape[0] * cfg.global_ratio))
    global_cols = torch.randint(model.num_columns, (n_global,), generator=gen)
    x = (x - model.input_mean.view(1, -1, 1, 1)) / model.input_std.view(1, -1, 1, 1)
    for block in model.blocks:
        x = baseline_block(block, x, global_cols, x.shape[0] - n_global, cfg.local_drop, gen)
    return model.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _throughput(model: FractalNet, forward, batches, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    model.train()
    t0 = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        loss = F.cross_entropy(forward(model, x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batches[0][0].shape[0] / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=15, help="timed training steps per round and method")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = FractalNetConfig(columns=3, filters=(32, 64, 64), num_classes=10, in_channels=3)
    torch.manual_seed(0)
    ours = FractalNet(cfg)
    base = copy.deepcopy(ours)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(a.batch, 3, 32, 32, generator=g), torch.randint(10, (a.batch,), generator=g))
               for _ in range(4)]
    gen_ours = torch.Generator().manual_seed(1)
    gen_base = torch.Generator().manual_seed(1)

    def f_ours(m, x):
        return m(x, generator=gen_ours)

    def f_base(m, x):
        return baseline_forward(m, x, gen_base)

    _throughput(ours, f_ours, batches, a.warmup)
    _throughput(base, f_base, batches, a.warmup)
    r_ours, r_base = [], []
    for r in range(a.rounds):
        r_base.append(_throughput(base, f_base, batches, a.steps))
        r_ours.append(_throughput(ours, f_ours, batches, a.steps))
        print(f"round {r + 1}: baseline {r_base[-1]:.0f} images/s, ours {r_ours[-1]:.0f} images/s", flush=True)
    mb, mo = statistics.median(r_base), statistics.median(r_ours)
    print(f"config: C=3 B=3 filters 32/64/64, batch {a.batch}, 3x32x32, drop-path local 0.15 + global 50%, "
          f"torch threads {torch.get_num_threads()}")
    print(f"baseline (all paths, per-sample masks): {mb:.0f} images/s (median of {a.rounds})")
    print(f"ours (dropped paths not computed):      {mo:.0f} images/s (median of {a.rounds})")
    print(f"speed-up: {mo / mb:.2f}x (target >= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
