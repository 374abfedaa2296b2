"""What a Dask cluster costs on top of the local executor: the same grid locally and on a local 2-worker cluster
(started by this bench: ``LocalCluster``, worker processes, one thread each), in one run.

    python bench/cluster.py                                   # the issue's setting: 256²×500, tanh
    python bench/cluster.py --resolution 64 --steps 100       # a quick look

It prints both times, the cluster's overhead in per cent, the cost of one tile, the scheduler's overhead per task
(no-op tasks through the same client), and extrapolates a 4096²×500 frame on N workers from them:
``time(N) = max(worker-seconds / N, tasks × scheduler overhead) + one task`` (the scheduler hands out tasks one
after another while the workers compute, so beyond ``task time / overhead`` workers it is the bottleneck; the
same view at more pixels has the same share of early exits, so a pixel's cost carries over).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.trainability import cluster, grid  # noqa: E402
from engine.trainability.cost import network_steps  # noqa: E402
from engine.trainability.presets import PRESETS, preset  # noqa: E402


def _on_cluster(spec, address: str, direct_tile: int | None) -> tuple[np.ndarray, list[float]]:
    """The grid on the cluster, through ``run_grid(scheduler=)`` (the app's path), or with ``direct_tile`` its
    tiles of that side through ``cluster.run_on_cluster``. Returns (measure, compute seconds of each task)."""
    from distributed import get_task_stream

    client = cluster._client(address)
    with get_task_stream(client=client) as stream:
        if direct_tile is None:
            measure = grid.run_grid(spec, scheduler=address, kernel="fused").measure
        else:
            results = cluster.run_on_cluster(address, spec.tiles(direct_tile), grid._tile_in_process,
                                             (None, "fused"), network_steps(spec))
            measure = np.empty(spec.shape)
            for r in results:
                (r0, r1), (c0, c1) = r.tile.rows, r.tile.cols
                measure[r0:r1, c0:c1] = r.measure
    compute = [sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
               for t in stream.data if str(t.get("key", "")).startswith(("_cluster_task", "('_cluster_task"))]
    return measure, compute


def _scheduler_overhead(address: str, n: int = 400) -> float:
    """Seconds per task of the scheduler and client alone: ``n`` no-op tasks, submitted and gathered."""
    client = cluster._client(address)
    client.gather(client.map(abs, range(-20, 0), pure=False))  # warm the connection
    t0 = time.perf_counter()
    client.gather(client.map(abs, range(-n, 0), pure=False))
    return (time.perf_counter() - t0) / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tanh", choices=list(PRESETS))
    ap.add_argument("--resolution", type=int, default=256, help="grid side (default 256)")
    ap.add_argument("--steps", type=int, default=500, help="training steps per pixel (default 500)")
    ap.add_argument("--width", type=int, default=None, help="hidden units (default: the preset's)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster (default 2)")
    ap.add_argument("--direct", type=int, default=None, metavar="TILE",
                    help="submit the grid's tiles of this side through cluster.run_on_cluster instead of "
                         "run_grid(scheduler=) (the app's path, the default)")
    ap.add_argument("--task-pixels", type=int, default=256,
                    help="pixels per task of the extrapolated frame (default 256: the fused kernel's batch)")
    ap.add_argument("--extrapolate", type=int, default=4096, help="side of the extrapolated frame (default 4096)")
    args = ap.parse_args(argv)
    # As the README starts workers: without Dask's sampling profiler (it cost ~9% of a worker on 2 cores; the
    # kernel is compiled code it cannot see into anyway). Set before distributed is imported and inherited.
    os.environ.setdefault("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "False")
    from distributed import LocalCluster

    over = {"resolution": args.resolution, "steps": args.steps}
    if args.width is not None:
        over["width"] = args.width
    spec = preset(args.preset, **over)
    work = network_steps(spec)
    warm = preset(args.preset, resolution=16, steps=20)
    grid.run_grid(warm, kernel="fused")  # numba's compiled kernel loaded before timing
    t0 = time.perf_counter()
    local = grid.run_grid(spec, kernel="fused")
    t_local = time.perf_counter() - t0
    print(f"{spec.n_x}x{spec.n_y}x{spec.steps} {args.preset} (width {spec.width}, {work / 1e6:.1f} M network-steps)")
    print(f"local   : {t_local:7.2f} s  ({work / t_local:,.0f} network-steps/s)")

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as lc:
        address = lc.scheduler_address
        try:
            t0 = time.perf_counter()
            _on_cluster(warm, address, args.direct)  # workers import torch and load the kernel before timing
            t_warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            measure, compute = _on_cluster(spec, address, args.direct)
            t_cluster = time.perf_counter() - t0
            per_task = _scheduler_overhead(address)
        finally:
            cluster.close_clients()
    same = np.array_equal(measure.view(np.int64), local.measure.view(np.int64))
    pixels = spec.n_x * spec.n_y
    n_tasks = max(1, len(compute))
    how = "run_grid(scheduler=)" if args.direct is None else f"tiles of {args.direct}² submitted directly"
    print(f"cluster : {t_cluster:7.2f} s  ({work / t_cluster:,.0f} network-steps/s; {args.workers} workers, {how}, "
          f"{len(compute)} tasks; workers warmed up in {t_warm:.1f} s, not counted)")
    print(f"overhead: {100 * (t_cluster / t_local - 1):+.1f}% against local; pixels bit for bit equal: {same}")
    busy = sum(compute)
    idle = (t_cluster * args.workers - busy) / n_tasks
    print(f"per task: {pixels / n_tasks:,.0f} pixels x {spec.steps} steps, {busy / n_tasks * 1e3:.1f} ms of compute; "
          f"workers idle {idle * 1e3:.1f} ms per task in this grid; scheduler overhead per task (no-op tasks): "
          f"{per_task * 1e3:.2f} ms")
    side = args.extrapolate
    per_pixel = busy / pixels  # worker-seconds per pixel of this view
    big_tasks = math.ceil(side * side / args.task_pixels)
    task_s = per_pixel * args.task_pixels
    print(f"{side}x{side}x{spec.steps} = {side * side * spec.steps:.2g} network-steps: {side * side * per_pixel:,.0f} "
          f"worker-seconds, as {big_tasks:,} tasks of {args.task_pixels} pixels ({task_s:.2f} s each); the scheduler "
          f"keeps up with about {task_s / per_task:,.0f} busy workers")
    for n in (1, 8, 64):
        compute_s = side * side * per_pixel / n
        t = max(compute_s, big_tasks * per_task) + task_s  # the scheduler dispatches while workers compute
        print(f"  {n:3d} workers: {t:9,.0f} s ({t / 3600:6.2f} h); scheduler busy {big_tasks * per_task:,.0f} s of it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
