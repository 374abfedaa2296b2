"""Tiny job kinds for the options tests: each writes down exactly which keyword arguments the worker gave it."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from engine.specs import SpecMixin

MODULE = __name__


@dataclasses.dataclass(frozen=True)
class OptSpec(SpecMixin):
    """``steps`` sleeps of ``step_s`` seconds, then ``received.json``."""

    steps: int = 1
    step_s: float = 0.0
    tag: str = ""


def _finish(spec: OptSpec, out_dir, progress, received: dict) -> None:
    for i in range(spec.steps):
        time.sleep(spec.step_s)
        if progress is not None:
            progress((i + 1) / spec.steps, {"step": i})
    (Path(out_dir) / "received.json").write_text(json.dumps(received, sort_keys=True))


def with_options(spec: OptSpec, out_dir, progress=None, cancel=None, *, scheduler=None, sources=None) -> None:
    """Declares ``scheduler`` and ``sources``: both are passed."""
    _finish(spec, out_dir, progress, {
        "scheduler": scheduler, "sources": type(sources).__name__ if sources is not None else None,
        "sources_root": str(sources.store.root) if sources is not None else None})


def without_options(spec: OptSpec, out_dir, progress=None, cancel=None) -> None:
    """Declares neither: called with the four arguments only, whatever the job's options."""
    _finish(spec, out_dir, progress, {"called": "plain"})


def register():
    from runs import kinds

    kinds.register_task("opt_with", MODULE, "OptSpec", "with_options")
    kinds.register_task("opt_without", MODULE, "OptSpec", "without_options")
    return "opt_with", "opt_without"
