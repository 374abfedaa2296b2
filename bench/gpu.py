"""GPU benchmark of the trainability grid: one 1024x1024 frame of 500 steps (tanh, float64) on CUDA, and what a
4096x4096 frame of the same view would take at that rate.

    python bench/gpu.py                               # the issue's setting
    python bench/gpu.py --resolution 256 --dtype float32   # quicker

It prints network-steps per second (every pixel counts as ``steps`` network-steps, also a diverged pixel that
stopped early), the GPU's peak memory, and the extrapolation (the same view at 16x the pixels has the same share
of early exits, so its time scales with the pixel count). Without a CUDA device it says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import trainability as tr  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tanh", choices=list(tr.PRESETS))
    ap.add_argument("--resolution", type=int, default=1024, help="frame side (default 1024)")
    ap.add_argument("--steps", type=int, default=500, help="training steps per pixel (default 500)")
    ap.add_argument("--dtype", default="float64", choices=list(tr.DTYPES))
    ap.add_argument("--extrapolate", type=int, default=4096, help="side of the extrapolated frame (default 4096)")
    ap.add_argument("--check", type=int, default=64,
                    help="side of a grid also run on the CPU, to compare verdicts (0: skip; default 64)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to measure (run this where `torch.cuda.is_available()` is true)")
        return 0
    name = torch.cuda.get_device_name(0)
    print(f"device: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    spec = tr.preset(args.preset, resolution=args.resolution, steps=args.steps, dtype=args.dtype)
    t0 = time.perf_counter()
    tr.run_grid(tr.preset(args.preset, resolution=64, steps=20, dtype=args.dtype), device="cuda")  # warm-up
    torch.cuda.synchronize()
    print(f"warm-up (CUDA context, cuBLAS handles): {time.perf_counter() - t0:.1f} s")
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = tr.run_grid(spec, device="cuda")
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    work = tr.network_steps(spec)
    rate = work / wall
    print(f"[{args.dtype}] {spec.n_x}x{spec.n_y}x{spec.steps} on {name}: {wall:.1f} s -> {rate:,.0f} network-steps/s "
          f"(stepped {res.steps_run / work:.0%} of the count; converged {res.converged.mean():.0%}; peak GPU "
          f"memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB)")
    big = tr.preset(args.preset, resolution=args.extrapolate, steps=args.steps, dtype=args.dtype)
    print(f"[{args.dtype}] extrapolated {big.n_x}x{big.n_y}x{big.steps}: {tr.network_steps(big) / rate:,.0f} s "
          f"({tr.network_steps(big) / rate / 60:.1f} min) at that rate")
    if args.check:
        small = tr.preset(args.preset, resolution=args.check, steps=args.steps, dtype=args.dtype)
        gpu, cpu = tr.run_grid(small, device="cuda"), tr.run_grid(small, device="cpu")
        print(f"[{args.dtype}] {args.check}x{args.check}: GPU and CPU verdicts agree on "
              f"{(gpu.converged == cpu.converged).mean():.2%} of pixels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
