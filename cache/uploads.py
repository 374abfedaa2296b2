"""Dataset files users upload, kept under the store root by content hash and inside the store's size limit.

Why here: a training job runs in its own process, so an upload must be a file it can open (not page memory), and
a link names it by id (``?upload=<id>``), so the id is the content's hash: the same file uploaded twice is kept
once. Uploads and results share the store's limit; when they exceed it, the least recently used uploads go.
Layout: ``<root>/uploads/<id>/<file>`` + ``meta.json`` (the loader that reads it, its summary, the file name).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from cache.store import Store, default_store, dir_size, human_size
from engine.io import write_bytes_atomic, write_json_atomic

FOLDER = "uploads"
META = "meta.json"
_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Upload:
    """A kept upload: ``path`` is the file, ``name`` the dataset loader that reads it."""

    id: str
    path: Path
    name: str
    original_name: str
    summary: dict


def upload_id(data: bytes) -> str:
    """The id of an upload: the first 16 hex digits of its sha256."""
    return hashlib.sha256(data).hexdigest()[:16]


def is_id(text: str) -> bool:
    return bool(_ID.fullmatch(text or ""))


def _root(store: Store | None) -> Path:
    return (store or default_store()).root / FOLDER


def _safe_name(name: str) -> str:
    base = Path(name).name or "upload"
    return re.sub(r"[^A-Za-z0-9._-]", "_", base)[:120]


def save(data: bytes, filename: str, *, name: str, summary: dict, store: Store | None = None) -> Upload:
    """Keep ``data`` (already checked by the dataset loaders) as ``filename``; ``name`` is the loader that read it.

    Raises ``ValueError`` when the file alone is larger than the store's limit; otherwise older uploads are
    removed (least recently used first) until uploads and results fit the limit together.
    """
    store = store or default_store()
    if len(data) > store.limit_bytes:
        raise ValueError(f"upload: {filename!r} is {human_size(len(data))}, over the store's size limit of "
                         f"{human_size(store.limit_bytes)} (FRACTAL_LAB_CACHE_LIMIT_GB)")
    uid = upload_id(data)
    d = _root(store) / uid
    d.mkdir(parents=True, exist_ok=True)
    fname = _safe_name(filename)
    if not (d / fname).is_file():
        write_bytes_atomic(d / fname, data)
    write_json_atomic(d / META, {"name": name, "file": fname, "original_name": filename, "summary": summary})
    evict(store, keep=(uid,))
    return Upload(uid, d / fname, name, filename, summary)


def find(uid: str, store: Store | None = None) -> Upload | None:
    """The kept upload ``uid`` (and it counts as used now), or None when it is not on this machine."""
    if not is_id(uid):
        return None
    d = _root(store) / uid
    try:
        meta = json.loads((d / META).read_text())
        path = d / meta["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not path.is_file():
        return None
    try:
        os.utime(d / META)  # the LRU clock
    except OSError:
        pass
    return Upload(uid, path, str(meta.get("name", "")), str(meta.get("original_name", meta["file"])),
                  meta.get("summary") or {})


def id_of_path(path: str | os.PathLike | None) -> str | None:
    """The upload id of a file kept here (e.g. a run's ``dataset_path``), else None."""
    if not path:
        return None
    p = Path(path)
    return p.parent.name if p.parent.parent.name == FOLDER and is_id(p.parent.name) else None


def size_bytes(store: Store | None = None) -> int:
    root = _root(store)
    return sum(dir_size(d) for d in root.iterdir() if d.is_dir()) if root.is_dir() else 0


def evict(store: Store | None = None, keep: tuple[str, ...] = ()) -> list[str]:
    """Remove least recently used uploads (never those in ``keep``) while uploads and stored results together
    exceed the store's limit; return the removed ids."""
    store = store or default_store()
    root = _root(store)
    if not root.is_dir():
        return []
    folders = [d for d in root.iterdir() if d.is_dir() and is_id(d.name)]
    sizes = {d.name: dir_size(d) for d in folders}
    total = sum(sizes.values()) + store.size_bytes()
    removed = []
    for d in sorted(folders, key=_last_used):
        if total <= store.limit_bytes:
            break
        if d.name in keep:
            continue
        shutil.rmtree(d, ignore_errors=True)
        total -= sizes[d.name]
        removed.append(d.name)
    return removed


def _last_used(d: Path) -> float:
    try:
        return (d / META).stat().st_mtime
    except OSError:
        return 0.0
