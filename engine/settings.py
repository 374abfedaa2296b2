"""``FRACTAL_LAB_*`` environment knobs, read in one place with the same rules and messages for every knob.

A knob is read when it is needed (tests and jobs set them per process); a bad value is a ``ValueError`` naming
the variable and its allowed range (``FRACTAL_LAB_X: must be … in [lo, hi], got '…'``), never a silent fallback
and never a value that costs hours or gigabytes. ``nan``, ``inf``, ``1e400``, negative, tiny and non-numeric
values are refused, not clamped, for every knob: a typo in a shared box's environment should stop the lab
with its name, not quietly run it with another setting. The knobs:

- ``FRACTAL_LAB_CACHE`` (folder) and ``FRACTAL_LAB_CACHE_LIMIT_GB`` [0.001, 100000]: see :mod:`cache.settings`.
- ``FRACTAL_LAB_MAX_JOBS`` integer [1, 4096]; ``FRACTAL_LAB_CANCEL_GRACE_S`` [0.1, 3600] s (:mod:`runs.schedule`).
- ``FRACTAL_LAB_THREADS`` integer [1, 4096]; ``FRACTAL_LAB_GRID_PROCESSES`` switch (trainability executor).
- ``FRACTAL_LAB_MAX_DATASET_BYTES`` [1, 1e15] (:mod:`engine.datasets.archives`).
"""

from __future__ import annotations

import math
import os


def _env_number(name: str, default, lo, hi, parse, words: str):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name}: must be {words} in [{lo:g}, {hi:g}], got {text!r}")
    return value


def env_int(name: str, default: int, lo: int, hi: int) -> int:
    """The integer in ``$name`` (``default`` when unset or empty), which must lie in ``[lo, hi]``."""
    return _env_number(name, default, lo, hi, int, "an integer")


def env_float(name: str, default: float, lo: float, hi: float) -> float:
    """The finite number in ``$name`` (``default`` when unset or empty), which must lie in ``[lo, hi]``."""
    return _env_number(name, default, lo, hi, float, "a number")


def env_flag(name: str, default: bool) -> bool:
    """``$name`` as a switch: 1/true/yes/on or 0/false/no/off (``default`` when unset or empty)."""
    text = os.environ.get(name, "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}: must be 1/true/yes/on or 0/false/no/off, got {text!r}")
