"""``FRACTAL_LAB_*`` environment knobs, read in one place with the same rules and messages for every knob.

A knob is read when it is needed (tests and jobs set them per process); a bad value is a ``ValueError`` naming
the variable and its allowed range, never a silent fallback and never a value that costs hours or gigabytes.
"""

from __future__ import annotations

import math
import os


def env_int(name: str, default: int, lo: int, hi: int) -> int:
    """The integer in ``$name`` (``default`` when unset or empty), which must lie in ``[lo, hi]``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}: must be an integer in [{lo}, {hi}], got {text!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name}: must be an integer in [{lo}, {hi}], got {value}")
    return value


def env_float(name: str, default: float, lo: float, hi: float) -> float:
    """The finite number in ``$name`` (``default`` when unset or empty), which must lie in ``[lo, hi]``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name}: must be a number in [{lo:g}, {hi:g}], got {text!r}")
    return value


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
