"""Work functions that Dask workers of tests/engine/trainability/test_cluster.py import (by reference, as they
import the grid's): they make "a running item was told to stop" observable from the test, through files."""

from __future__ import annotations

import time
from pathlib import Path

WAIT_LIMIT_S = 120.0  # an item that is never told to stop ends anyway, so a broken cancel cannot hang a worker


def wait_for_stop(folder: str, item: int, on_progress, should_stop):
    """Write ``started-<item>``, poll ``should_stop()`` until it is true, write ``stopped-<item>``; returns
    None when stopped (what a stopped tile returns), ``"timeout"`` otherwise."""
    out = Path(folder)
    (out / f"started-{item}").write_text("")
    t_end = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < t_end:
        if should_stop():
            (out / f"stopped-{item}").write_text("")
            return None
        time.sleep(0.05)
    return "timeout"


def fail_on(bad: int, item: int, on_progress, should_stop):
    """Raise for item ``bad``, else return the item's square (an item's error must reach the caller)."""
    if item == bad:
        raise ArithmeticError(f"item {item} refuses")
    on_progress(1)
    return item * item
