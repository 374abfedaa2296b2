"""Benchmark of the trainability engine against a straightforward per-pixel torch.func baseline.

    python bench/trainability.py                      # the issue's setting: tanh preset, 128x128, 500 steps
    python bench/trainability.py --resolution 64 --steps 200 --baseline-resolution 16   # quicker

For float64 and float32 it prints network-steps per second of ``run_grid`` (every pixel counts as ``steps``
network-steps, also a diverged pixel that stopped early: it is the same result), and the same rate for a
baseline measured in the same run: ``torch.func.vmap`` over pixels of ``torch.func.grad_and_value`` of the
paper's loss, every pixel for every step (on a smaller grid; rates are compared). It also checks that the two
agree on the baseline's grid. Timings on a shared machine are noisy: compare the ratios, which are measured
back to back in one process; the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import trainability as tr  # noqa: E402



def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (large grids run tiles in worker processes)."""
    tm = os.times()
    return tm.user + tm.system + tm.children_user + tm.children_system

def baseline_grid(spec: tr.GridSpec) -> tuple[np.ndarray, float, float]:
    """The obvious implementation: autograd per pixel, vmapped over all pixels of ``spec``; returns the measure,
    the wall time and the CPU time. Same data, weights and learning rates as the engine (tanh/relu/identity,
    full batch)."""
    dt = tr.DTYPES[spec.dtype]
    data = tr.draw_init(spec)
    X, Y, W0, W1 = (torch.tensor(data[k], dtype=dt) for k in ("X", "Y", "W0", "W1"))
    n = spec.width
    act = {"tanh": lambda z: torch.tanh(math.sqrt(2) * z), "relu": lambda z: math.sqrt(2) * torch.relu(z),
           "identity": lambda z: z}[spec.activation]

    def loss_fn(w0, w1):
        out = (act(X @ w0 / math.sqrt(n)) @ w1 / math.sqrt(n)) / math.sqrt(n)
        return torch.mean((out - Y) ** 2)

    def step(w0, w1, lr0, lr1):
        (g0, g1), loss = torch.func.grad_and_value(loss_fn, argnums=(0, 1))(w0, w1)
        return w0 - lr0 * g0, w1 - lr1 * g1, loss

    vstep = torch.func.vmap(step)
    xs, ys = np.meshgrid(spec.x_values, spec.y_values)
    lr0, lr1, offset = tr.hyperparameters(spec, xs.ravel(), ys.ravel())
    P = lr0.size
    w0 = (W0.expand(P, n, n) + torch.tensor(offset, dtype=dt).view(P, 1, 1)).contiguous()
    w1 = W1.expand(P, n, 1).contiguous()
    lr0_t, lr1_t = torch.tensor(lr0, dtype=dt), torch.tensor(lr1, dtype=dt)
    losses = torch.empty(P, spec.steps, dtype=torch.float64)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    for t in range(spec.steps):
        w0, w1, loss = vstep(w0, w1, lr0_t, lr1_t)
        losses[:, t] = loss.double()
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return tr.convergence_measure(losses.numpy()).reshape(spec.shape), elapsed, cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tanh", choices=list(tr.PRESETS))
    ap.add_argument("--resolution", type=int, default=128, help="engine grid side (default 128)")
    ap.add_argument("--steps", type=int, default=500, help="training steps per pixel (default 500)")
    ap.add_argument("--baseline-resolution", type=int, default=32, help="baseline grid side (default 32)")
    ap.add_argument("--baseline-steps", type=int, default=100,
                    help="baseline steps per pixel (default 100; its rate barely depends on it)")
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=list(tr.DTYPES))
    ap.add_argument("--repeat", type=int, default=1, help="engine runs per dtype; the best is reported")
    args = ap.parse_args(argv)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; load average at start "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} (a shared machine: trust the ratios)")
    rows = []
    for dtype in args.dtypes:
        spec = tr.preset(args.preset, resolution=args.resolution, steps=args.steps, dtype=dtype)
        best = None
        for _ in range(max(1, args.repeat)):
            cpu0 = _cpu_seconds()
            res = tr.run_grid(spec, device="cpu")
            cpu = _cpu_seconds() - cpu0
            if best is None or res.elapsed_s < best[0].elapsed_s:
                best = (res, cpu)
        res, cpu = best
        rate = tr.network_steps(spec) / res.elapsed_s
        print(f"[{dtype}] engine   {spec.n_x}x{spec.n_y}x{spec.steps}: {res.elapsed_s:7.2f} s wall, "
              f"{cpu:7.2f} s CPU -> {rate:10,.0f} network-steps/s "
              f"(networks actually stepped: {res.steps_run / tr.network_steps(spec):.0%} of the count; "
              f"converged {res.converged.mean():.0%})")

        bspec = tr.preset(args.preset, resolution=args.baseline_resolution, steps=args.baseline_steps, dtype=dtype)
        # The baseline gets the better of torch's default intra-op threads and a single thread.
        default_threads = torch.get_num_threads()
        runs = {}
        for threads in sorted({default_threads, 1}, reverse=True):
            torch.set_num_threads(threads)
            try:
                runs[threads] = baseline_grid(bspec)
            finally:
                torch.set_num_threads(default_threads)
        threads, (bmeasure, bwall, bcpu) = min(runs.items(), key=lambda kv: kv[1][1])
        brate = tr.network_steps(bspec) / bwall
        agree = float(((bmeasure < 0) == tr.run_grid(bspec, device="cpu").converged).mean())
        others = ", ".join(f"{tr.network_steps(bspec) / w:,.0f}/s with {t} thread(s)" for t, (_, w, _) in runs.items()
                           if t != threads)
        print(f"[{dtype}] baseline {bspec.n_x}x{bspec.n_y}x{bspec.steps}: {bwall:7.2f} s wall, {bcpu:7.2f} s CPU "
              f"-> {brate:10,.0f} network-steps/s with {threads} thread(s) ({others}); verdicts agree "
              f"with the engine on {agree:.1%} of its pixels")
        cpu_ratio = (tr.network_steps(spec) / cpu) / (tr.network_steps(bspec) / bcpu)
        print(f"[{dtype}] speed-up over the baseline: {rate / brate:.1f}x wall-clock "
              f"({cpu_ratio:.1f}x per CPU-second)")
        rows.append((dtype, rate, brate, rate / brate))
    print(f"load average at end {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print("summary: " + "; ".join(f"{d}: {r:,.0f} network-steps/s, {x:.1f}x baseline ({b:,.0f}/s)"
                                   for d, r, b, x in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
