"""Checksums of a stored entry: written into ``record.json`` at commit, checked before anything reads the entry.

A flipped bit on disk, a truncated copy or a hand edit must never be served as a result, so every file's sha256
is recorded when the entry is made and compared when it is read. Hashing a large model on every page rerun would
be slow, so a passed check is remembered in this process for as long as no file of the entry changed (same
names, sizes, inodes and mtimes). Entries stored before checksums existed are checked by structure only.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from engine.errors import DamagedResult
from engine.io import check_stored_file, damaged

CHUNK = 1 << 20
_VERIFIED: dict[str, tuple] = {}  # entry folder -> signature of its files when it last passed
_VERIFIED_MAX = 4096
_LOCK = threading.Lock()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def entry_files(folder: Path, skip: tuple[str, ...]) -> list[str]:
    """Relative names of the regular files under ``folder`` (symlinks and ``skip`` names left out), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            full = os.path.join(dirpath, name)
            if name in skip or os.path.islink(full):
                continue
            out.append(os.path.relpath(full, folder).replace(os.sep, "/"))
    return sorted(out)


def checksums(folder: Path, skip: tuple[str, ...]) -> dict[str, str]:
    """``{relative name: sha256 hex}`` of every file of a folder about to become an entry."""
    return {name: sha256_file(folder / name) for name in entry_files(folder, skip)}


def signature(folder: Path, skip: tuple[str, ...]) -> tuple:
    """What must stay the same for a passed check to still hold: every file's name, size, inode and mtime."""
    sig = []
    for name in entry_files(folder, skip):
        st = os.stat(folder / name)
        sig.append((name, st.st_size, st.st_ino, st.st_mtime_ns))
    return tuple(sig)


def check(folder: Path, record: dict, record_name: str, skip: tuple[str, ...]) -> None:
    """Raise :class:`DamagedResult` unless every file the record lists has its recorded sha256 (a record
    without checksums, written before they existed: every file must at least parse as its type)."""
    sums = record.get("sha256")
    if sums is None:
        for name in entry_files(folder, skip + (record_name,)):
            check_stored_file(folder / name)
        return
    if not isinstance(sums, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in sums.items()):
        raise damaged(folder / record_name, "its sha256 table is not {file: hex digest}")
    root = folder.resolve()
    for name, digest in sorted(sums.items()):
        path = folder / name
        if not path.resolve().is_relative_to(root):
            raise damaged(folder / record_name, f"lists a file outside the entry: {name[:80]!r}")
        if not path.is_file():
            raise damaged(path, "missing")
        try:
            actual = sha256_file(path)
        except OSError as exc:
            raise damaged(path, f"unreadable ({exc.strerror or exc})") from None
        if actual != digest.lower():
            raise damaged(path, "fails its checksum (changed or corrupted since it was stored)")


def verify(folder: Path, record: dict, record_name: str, skip: tuple[str, ...]) -> None:
    """:func:`check`, skipped when this process already checked the same, unchanged files."""
    key = str(folder)
    try:
        sig = signature(folder, skip)
    except OSError as exc:
        raise DamagedResult(f"{folder.name}: unreadable ({exc.strerror or exc})", path=str(folder)) from None
    with _LOCK:
        if _VERIFIED.get(key) == sig:
            return
    check(folder, record, record_name, skip)
    with _LOCK:
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
        _VERIFIED[key] = sig


def forget(folder: Path) -> None:
    with _LOCK:
        _VERIFIED.pop(str(folder), None)
