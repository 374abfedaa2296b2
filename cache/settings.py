"""The store's ``FRACTAL_LAB_*`` knobs, read when a store is made (tests and workers set them per process)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.settings import env_float

DEFAULT_ROOT = Path(__file__).resolve().parent / "data"
DEFAULT_LIMIT_GB = 2.0


def cache_root() -> Path:
    """``$FRACTAL_LAB_CACHE``, else ``<repo>/cache/data`` (git-ignored)."""
    value = os.environ.get("FRACTAL_LAB_CACHE", "").strip()
    return Path(value).expanduser() if value else DEFAULT_ROOT


def limit_bytes() -> int:
    """The size the store is kept under: ``$FRACTAL_LAB_CACHE_LIMIT_GB`` (default 2) in bytes."""
    return int(env_float("FRACTAL_LAB_CACHE_LIMIT_GB", DEFAULT_LIMIT_GB, 0.001, 100_000.0) * 1024**3)
