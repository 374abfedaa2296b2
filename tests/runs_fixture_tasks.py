"""A tiny task kind for the store/job tests: sleeps in steps, reports progress, writes an array.

It follows the task-function contract of docs/architecture.md exactly (``run_to_dir(spec, out_dir, progress,
cancel)``), so the job runner is tested against the same interface the real engine tasks implement, without
paying for torch work on a 2-core machine.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from engine.errors import Cancelled
from engine.specs import SpecMixin

MODULE = __name__


@dataclasses.dataclass(frozen=True)
class SleepSpec(SpecMixin):
    """``steps`` sleeps of ``step_s`` seconds; result ``values.npy`` = arange(steps) * scale."""

    steps: int = 3
    step_s: float = 0.05
    scale: float = 1.0
    fail_at: int = -1  # raise RuntimeError at this step (-1: never)
    counter_file: str = ""  # each run appends one line here, so a test can count computations
    ignore_cancel: bool = False  # a badly behaved task: never looks at cancel (tests the hard stop)
    checkpoint: bool = False  # write checkpoint.txt (the step reached) each step, like a trainer would
    hard_exit_at: int = -1  # print a line to stderr and os._exit at this step (a crash no except can catch)
    tag: str = ""  # only to make distinct specs

    def __post_init__(self):
        if not 1 <= self.steps <= 10_000:
            raise ValueError(f"steps: must be in 1..10000, got {self.steps}")
        if not 0 <= self.step_s <= 60:
            raise ValueError(f"step_s: must be in 0..60 seconds, got {self.step_s}")


def run_to_dir(spec: SleepSpec, out_dir: Path, progress=None, cancel=None) -> None:
    out_dir = Path(out_dir)
    if spec.counter_file:
        with open(spec.counter_file, "a") as fh:
            fh.write(f"{os.getpid()}\n")
    start = 0
    ckpt = out_dir / "checkpoint.txt"
    if spec.checkpoint and ckpt.exists():
        start = int(ckpt.read_text())  # resume where the previous (cancelled) run stopped
        (out_dir / "resumed_from.txt").write_text(str(start))
    for i in range(start, spec.steps):
        if cancel is not None and cancel.is_set() and not spec.ignore_cancel:
            raise Cancelled(f"cancelled at step {i}")
        if i == spec.hard_exit_at:
            print(f"simulated abort at step {i}", file=sys.stderr, flush=True)
            os._exit(70)
        if i == spec.fail_at:
            raise RuntimeError(f"boom at step {i}")
        time.sleep(spec.step_s)
        if spec.checkpoint:
            ckpt.write_text(str(i + 1))
        if progress is not None:
            progress((i + 1) / spec.steps, {"step": i, "loss": 1.0 / (i + 1)})
    np.save(out_dir / "values.npy", np.arange(spec.steps, dtype=np.float64) * spec.scale)
    (out_dir / "spec.json").write_text(spec.to_json())


def thumbnail(result_dir: Path) -> bytes | None:
    """The kind's picture: a grey ramp as wide as the run had steps (None when it wrote no values)."""
    from engine.png import png_bytes

    path = Path(result_dir) / "values.npy"
    if not path.is_file():
        return None
    values = np.load(path)
    ramp = np.linspace(0, 255, max(1, values.size)).astype(np.uint8)
    return png_bytes(np.repeat(np.repeat(ramp[None, :, None], 3, axis=2), 4, axis=0))


def register() -> str:
    """Register the kind ``sleep`` with the job runner; return the kind."""
    import runs

    runs.register_task("sleep", MODULE, "SleepSpec", "run_to_dir", thumbnail="thumbnail", title="Sleep test")
    return "sleep"
