"""How close the calibrated cost estimate comes to real grid jobs on this machine (issue 13: within +-30%).

    python bench/estimates.py                                  # calibrate on 3 tanh grids, check 8 others
    python bench/estimates.py --calibrate tanh:32 tanh:48 --check tanh:64 relu:64 --steps 100   # quicker

Every grid runs as a real background job (``runs.submit``, one at a time, in a throw-away store), exactly as the
explorer runs it: the worker records each grid's speed, share of steps run and overhead from its ``stats.json``
(``runs.rates``). The first grids (``--calibrate``) give the measured numbers (medians, per experiment and dtype,
the speed in the cost model's reference units); for each of the other grids (``--check``) the bench prints the
estimate the explorer shows (``runs.rates.calibrated_seconds``: overhead + work * share / speed; an experiment not
among the calibration grids takes its preset's share) before it runs, the constants' estimate, the measured
seconds (``stats.json``'s ``elapsed_s``: the grid's own time, not the worker's start), and the error of each. A grid is ``PRESET:SIDE`` or ``PRESET:SIDE:DTYPE``. Rates are noisy on a shared
machine: the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_CALIBRATE = ["tanh:64", "tanh:96", "tanh:96:float32"]
DEFAULT_CHECK = ["tanh:128", "relu:128", "linear:128", "tanh_minibatch:96", "tanh_single:128", "offset:96",
                 "tanh:128:float32", "tanh:160"]


def parse_grid(text: str, steps: int):
    from engine import trainability as tr

    parts = text.split(":")
    if len(parts) not in (2, 3) or parts[0] not in tr.PRESETS or not parts[1].isdigit():
        raise SystemExit(f"grid: must be PRESET:SIDE[:DTYPE] with PRESET one of {', '.join(tr.PRESETS)}, "
                         f"got {text!r}")
    over = dict(resolution=(int(parts[1]), int(parts[1])), steps=steps)
    if len(parts) == 3:
        over["dtype"] = parts[2]
    return tr.preset(parts[0], **over)


def run_job(spec) -> dict:
    """Run ``spec`` as a grid job and return its stats.json."""
    import runs
    from engine.trainability import results

    job = runs.submit("grid", spec)
    st = runs.wait(job, timeout=24 * 3600)
    if st is None or st.state != "done":
        raise SystemExit(f"grid job {job} ended {st.state if st else 'missing'}: {st.message if st else ''}")
    stats = results.load(runs.result_dir(job)).stats
    if not stats:
        raise SystemExit(f"grid job {job}: no stats.json (an engine before issue 15?)")
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibrate", nargs="+", default=DEFAULT_CALIBRATE, metavar="GRID",
                    help=f"grids whose measured rate calibrates the estimate (default {' '.join(DEFAULT_CALIBRATE)})")
    ap.add_argument("--check", nargs="+", default=DEFAULT_CHECK, metavar="GRID",
                    help="grids estimated from that rate, then run and compared")
    ap.add_argument("--steps", type=int, default=500, help="training steps per pixel (default 500)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="fractal-lab-estimates-") as root:
        os.environ["FRACTAL_LAB_CACHE"] = root  # a throw-away store: the user's rates and results stay untouched
        os.environ["FRACTAL_LAB_MAX_JOBS"] = "1"  # one grid at a time, as a user's single click runs
        from engine.trainability import cost
        from runs import rates

        calibrate = [parse_grid(t, args.steps) for t in args.calibrate]
        check = [parse_grid(t, args.steps) for t in args.check]
        print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; {os.cpu_count()} cores; "
              f"{args.steps} steps")
        print(f"{'calibration grid':28s} {'seconds':>9s} {'overhead':>8s} {'speed (ref. steps/s)':>21s} "
              f"{'steps run':>9s}")
        for text, spec in zip(args.calibrate, calibrate):
            stats = run_job(spec)
            print(f"{text:28s} {stats['elapsed_s']:9.2f} {rates.overhead_of(stats) or 0:8.2f} "
                  f"{rates.rate_of(spec, stats):21,.0f} {rates.stepped_of(stats):9.1%}")
        errors, const_errors = [], []
        print(f"\n{'grid':28s} {'estimate':>9s} {'measured':>9s} {'error':>8s} {'constants':>10s} {'error':>8s}")
        for text, spec in zip(args.check, check):
            rate = rates.measured(spec.dtype, kind=rates.kind_of(spec))
            if rate is None:
                print(f"{text:28s} no calibration grid of dtype {spec.dtype}: skipped")
                continue
            estimate = rates.calibrated_seconds(spec)  # before it runs, from the grids before it: the page's figure
            constants = cost.estimate_seconds(spec)
            measured = run_job(spec)["elapsed_s"]
            err, cerr = 100 * (estimate / measured - 1), 100 * (constants / measured - 1)
            errors.append(err)
            const_errors.append(cerr)
            print(f"{text:28s} {estimate:9.2f} {measured:9.2f} {err:+7.1f}% {constants:10.2f} {cerr:+7.1f}%")
        if errors:
            worst = max(errors, key=abs)
            print(f"\ncalibrated: worst {worst:+.1f}%, median |error| {statistics.median(map(abs, errors)):.1f}%, "
                  f"within +-30%: {sum(abs(e) <= 30 for e in errors)}/{len(errors)}")
            print(f"constants:  worst {max(const_errors, key=abs):+.1f}%, median |error| "
                  f"{statistics.median(map(abs, const_errors)):.1f}%")
        print(f"load average {os.getloadavg()[0]:.2f} after the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
