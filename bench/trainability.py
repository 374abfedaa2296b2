"""Benchmark of the trainability kernels (fused, eager) against a straightforward per-pixel autograd baseline.

    python bench/trainability.py                      # the issue's setting: tanh preset, 128x128, 500 steps
    python bench/trainability.py --resolution 64 --steps 200 --baseline-resolution 16   # quicker

For float64 and float32 it prints, for each kernel, network-steps per wall-clock second and per CPU-second of
``run_grid`` (every pixel counts as ``steps`` network-steps, also a diverged pixel that stopped early: it is the
same result), the ratio fused/eager, and the same rates for a baseline measured in the same run:
``torch.func.vmap`` over pixels of ``torch.func.grad_and_value`` of the paper's loss, every pixel for every step
(on a smaller grid; rates are compared). It measures the machine's float64 and float32 matrix peaks (a
2048x2048 matmul on all cores) and prints each kernel's arithmetic (the two matrix products of the steps actually
computed) as a fraction of its dtype's peak. Timings on a shared machine are noisy: compare the ratios, which are
measured back to back in one process; the load average is printed alongside.
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
    """CPU time of this process and of its finished children (the eager kernel runs big grids in processes)."""
    tm = os.times()
    return tm.user + tm.system + tm.children_user + tm.children_system


def matmul_peak(dtype=torch.float64, size: int = 2048, repeat: int = 5) -> float:
    """GFLOP/s of a ``size``-square matmul on all of torch's threads (best of ``repeat``)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def flops_per_step(spec: tr.GridSpec) -> int:
    """The two matrix products of one network-step (forward and input-layer gradient): ``2 * 2 N n^2``."""
    return 4 * spec.n_samples * spec.width**2


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


def run_kernel(spec: tr.GridSpec, kernel: str, repeat: int):
    """The best of ``repeat`` runs of ``run_grid`` with ``kernel``: (result, wall s, CPU s)."""
    best = None
    for _ in range(max(1, repeat)):
        cpu0 = _cpu_seconds()
        res = tr.run_grid(spec, device="cpu", kernel=kernel)
        cpu = _cpu_seconds() - cpu0
        if best is None or res.elapsed_s < best[1]:
            best = (res, res.elapsed_s, cpu)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tanh", choices=list(tr.PRESETS))
    ap.add_argument("--resolution", type=int, default=128, help="engine grid side (default 128)")
    ap.add_argument("--steps", type=int, default=500, help="training steps per pixel (default 500)")
    ap.add_argument("--baseline-resolution", type=int, default=32, help="baseline grid side (default 32)")
    ap.add_argument("--baseline-steps", type=int, default=100,
                    help="baseline steps per pixel (default 100; its rate barely depends on it)")
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=list(tr.DTYPES))
    ap.add_argument("--kernels", nargs="+", default=["fused", "eager"], choices=["fused", "eager"])
    ap.add_argument("--no-baseline", action="store_true", help="skip the autograd baseline")
    ap.add_argument("--repeat", type=int, default=1, help="runs per kernel and dtype; the best is reported")
    args = ap.parse_args(argv)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; load average at start "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} (a shared machine: trust the ratios)")
    peaks = {d: matmul_peak(tr.DTYPES[d]) for d in ("float64", "float32")}
    print(f"matrix peak (2048x2048 matmul, {torch.get_num_threads()} threads): float64 {peaks['float64']:,.1f} "
          f"GFLOP/s, float32 {peaks['float32']:,.1f} GFLOP/s")
    if "fused" in args.kernels:  # compile, or load the compiled code from numba's disk cache, before timing
        t0 = time.perf_counter()
        for dtype in args.dtypes:
            tr.run_grid(tr.preset(args.preset, resolution=2, steps=20, dtype=dtype), device="cpu", kernel="fused")
        print(f"fused kernel ready in {time.perf_counter() - t0:.1f} s (first use compiles, later runs load the "
              f"cached code)")
    rows = []
    for dtype in args.dtypes:
        spec = tr.preset(args.preset, resolution=args.resolution, steps=args.steps, dtype=dtype)
        work = tr.network_steps(spec)
        rates = {}
        for kernel in args.kernels:
            res, wall, cpu = run_kernel(spec, kernel, args.repeat)
            rate, cpu_rate = work / wall, work / cpu
            gflops = res.steps_run * flops_per_step(spec) / wall / 1e9
            rates[kernel] = (rate, cpu_rate, res)
            print(f"[{dtype}] {kernel:<6} {spec.n_x}x{spec.n_y}x{spec.steps}: {wall:7.2f} s wall, {cpu:7.2f} s CPU -> "
                  f"{rate:10,.0f} network-steps/s wall, {cpu_rate:10,.0f} per CPU-second; products at "
                  f"{gflops:5.1f} GFLOP/s = {gflops / peaks[dtype]:.0%} of the {dtype} peak (stepped "
                  f"{res.steps_run / work:.0%} of the count; converged {res.converged.mean():.0%})")
        if "fused" in rates and "eager" in rates:
            (fr, fc, fres), (er, ec, eres) = rates["fused"], rates["eager"]
            agree = float((fres.converged == eres.converged).mean())
            print(f"[{dtype}] fused/eager: {fr / er:.2f}x wall-clock, {fc / ec:.2f}x per CPU-second; verdicts agree "
                  f"on {agree:.2%} of pixels")
        brate = None
        if not args.no_baseline:
            bspec = tr.preset(args.preset, resolution=args.baseline_resolution, steps=args.baseline_steps,
                              dtype=dtype)
            default_threads = torch.get_num_threads()  # the baseline gets the better of all threads and one
            runs = {}
            for threads in sorted({default_threads, 1}, reverse=True):
                torch.set_num_threads(threads)
                try:
                    runs[threads] = baseline_grid(bspec)
                finally:
                    torch.set_num_threads(default_threads)
            threads, (bmeasure, bwall, bcpu) = min(runs.items(), key=lambda kv: kv[1][1])
            bwork = tr.network_steps(bspec)
            brate, bcpu_rate = bwork / bwall, bwork / bcpu
            agree = float(((bmeasure < 0) == tr.run_grid(bspec, device="cpu").converged).mean())
            print(f"[{dtype}] baseline {bspec.n_x}x{bspec.n_y}x{bspec.steps}: {bwall:7.2f} s wall, {bcpu:7.2f} s CPU "
                  f"-> {brate:10,.0f} network-steps/s wall, {bcpu_rate:10,.0f} per CPU-second with {threads} "
                  f"thread(s); verdicts agree with the engine on {agree:.1%} of its pixels")
            for kernel, (rate, cpu_rate, _) in rates.items():
                print(f"[{dtype}] {kernel} over the baseline: {rate / brate:.1f}x wall-clock, "
                      f"{cpu_rate / bcpu_rate:.1f}x per CPU-second")
        rows.append((dtype, rates, brate))
    print(f"load average at end {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    parts = []
    for dtype, rates, brate in rows:
        s = ", ".join(f"{k} {r:,.0f}/s" for k, (r, _, _) in rates.items())
        if "fused" in rates and "eager" in rates:
            s += f" (fused/eager {rates['fused'][0] / rates['eager'][0]:.2f}x)"
        if brate:
            s += f", baseline {brate:,.0f}/s"
        parts.append(f"{dtype}: {s}")
    print("summary (network-steps per wall-clock second): " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
