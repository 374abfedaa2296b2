"""The store's ``FRACTAL_LAB_*`` knobs, read when a store is made (tests and workers set them per process).

- ``FRACTAL_LAB_CACHE``: the store's folder (default ``<repo>/cache/data``). A relative value is made absolute
  against the working folder of the first use in this process and kept so: a later ``chdir`` does not move
  the store, and a job's worker (started in the repository root) gets the absolute path. A folder that cannot
  be created is a ``ValueError`` naming the variable (raised by :class:`cache.store.Store`).
- ``FRACTAL_LAB_CACHE_LIMIT_GB``: a number in [0.001, 100000] (1 MB to 100 TB); ``nan``, ``inf``, ``1e400``,
  negative or tiny values are a ``ValueError`` naming the variable, never clamped: a store that silently
  evicts everything, or never evicts, would lose results or fill the disk.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from engine.settings import env_float

DEFAULT_ROOT = Path(__file__).resolve().parent / "data"
DEFAULT_LIMIT_GB = 2.0

_RESOLVED: dict[str, Path] = {}  # the value of $FRACTAL_LAB_CACHE -> the absolute folder it meant at first use
_LOCK = threading.Lock()


def absolute(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded, made absolute against the current folder (symlinks kept as they are)."""
    return Path(os.path.abspath(Path(path).expanduser()))


def cache_root() -> Path:
    """``$FRACTAL_LAB_CACHE`` as an absolute path (resolved once per value), else ``<repo>/cache/data``."""
    value = os.environ.get("FRACTAL_LAB_CACHE", "").strip()
    if not value:
        return DEFAULT_ROOT
    with _LOCK:
        root = _RESOLVED.get(value)
        if root is None:
            root = _RESOLVED[value] = absolute(value)
    return root


def limit_bytes() -> int:
    """The size the store is kept under: ``$FRACTAL_LAB_CACHE_LIMIT_GB`` (default 2) in bytes."""
    return int(env_float("FRACTAL_LAB_CACHE_LIMIT_GB", DEFAULT_LIMIT_GB, 0.001, 100_000.0) * 1024**3)
