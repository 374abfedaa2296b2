"""Files that are never seen half-written, and values that always serialise: one copy for the whole lab.

A reader (a page, another job, the store's eviction) may open a file at any moment, and a job may be killed at
any moment; writing to a temp file in the same folder and ``os.replace``-ing it means a reader sees the old file
or the new one, never a torn one.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: str | os.PathLike, data: Any, fsync: bool = True, indent: int | None = 1) -> None:
    """``data`` as JSON (made :func:`jsonable` first, keys sorted) written with :func:`write_bytes_atomic`."""
    text = json.dumps(jsonable(data), indent=indent, sort_keys=True)
    write_bytes_atomic(path, text.encode(), fsync=fsync)


def jsonable(value: Any) -> Any:
    """Plain JSON data from numpy/torch scalars and arrays, tuples and paths; non-finite floats become None
    (JSON has no NaN), anything else unknown becomes its ``str``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy / torch arrays and scalars
        return jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        return jsonable(value.item())
    return str(value)
