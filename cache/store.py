"""The result store: ``f"{kind}-{spec.content_hash()}"`` -> a folder of result files plus ``record.json``.

Content-addressed, so the same spec is never computed twice and a new engine version never serves stale
results. Entries are written in ``tmp/`` and moved into ``entries/`` with one rename (readers see all or
nothing; a killed writer leaves only ``tmp/`` litter that :meth:`Store.cleanup_temp` removes). The least
recently read entries are evicted past ``$FRACTAL_LAB_CACHE_LIMIT_GB``. ``jobs/`` under the root belongs to
:mod:`runs`.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import secrets
import shutil
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cache import settings
from engine.io import write_json_atomic

RECORD = "record.json"
# Files that stand for an entry in the Runs list, in order of preference (grids write image.png).
THUMBNAIL_NAMES = ("image.png", "thumbnail.png", "preview.png")
ACCESS = ".last_access"
# A temp folder whose writer pid cannot be checked (foreign name) is treated as stale after this long.
STALE_TEMP_S = 6 * 3600


def pid_alive(pid: int | None) -> bool:
    """True when a process with this pid exists and is not a zombie (a finished child nobody reaped yet)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dir_size(path: Path) -> int:
    total = 0
    for p in Path(path).rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total


class Store:
    """A content-addressed store of result directories. Cheap to construct; all state is on disk."""

    def __init__(self, root: str | os.PathLike | None = None, limit_bytes: int | None = None):
        self.root = Path(root).expanduser() if root is not None else settings.cache_root()
        if limit_bytes is not None and limit_bytes <= 0:
            raise ValueError(f"limit_bytes: must be > 0, got {limit_bytes}")
        self.limit_bytes = int(limit_bytes) if limit_bytes is not None else settings.limit_bytes()
        self.entries_dir = self.root / "entries"
        self.tmp_dir = self.root / "tmp"
        for d in (self.entries_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Store(root={str(self.root)!r}, limit_bytes={self.limit_bytes})"

    # ----------------------------------------------------------------------------------------------- keys
    @staticmethod
    def key(kind: str, spec: Any, extra: str = "") -> str:
        """The store key of ``spec`` computed as ``kind``: ``f"{kind}-{spec.content_hash(extra)}"``."""
        if not kind or not all(c.isalnum() or c in "_." for c in kind):
            raise ValueError(f"kind: must be a non-empty name of letters, digits, '_' or '.', got {kind!r}")
        return f"{kind}-{spec.content_hash(extra)}"

    @staticmethod
    def check_key(key: str) -> str:
        """``key`` itself, or ``ValueError`` when it could name a path outside the store."""
        if not key or "/" in key or "\\" in key or key.startswith(".") or "\0" in key:
            raise ValueError(f"key: not a valid store key: {key!r}")
        return key

    # ---------------------------------------------------------------------------------------------- reads
    def path(self, key: str, touch: bool = True) -> Path:
        """The entry's folder (whether or not it exists); counts as an access for LRU when it exists (unless
        ``touch=False``, e.g. for a list that only shows it)."""
        p = self.entries_dir / self.check_key(key)
        if touch:
            self._touch(p)
        return p

    def has(self, key: str) -> bool:
        """True when a complete entry exists (``record.json`` is written last, so it marks completeness)."""
        return (self.entries_dir / self.check_key(key) / RECORD).is_file()

    def record(self, key: str) -> dict | None:
        """The entry's record (plus ``path`` and ``last_access``), or None when there is no such entry."""
        p = self.entries_dir / self.check_key(key)
        try:
            rec = json.loads((p / RECORD).read_text())
        except (OSError, ValueError):
            return None
        rec.setdefault("key", key)
        rec["path"] = str(p)
        rec["last_access"] = self._access_time(p)
        return rec

    def files(self, key: str) -> list[str]:
        """Names (relative paths) of the entry's result files, without the record and sidecars."""
        p = self.entries_dir / self.check_key(key)
        if not (p / RECORD).is_file():
            return []
        return sorted(
            str(f.relative_to(p)) for f in p.rglob("*")
            if f.is_file() and f.name not in (RECORD, ACCESS)
        )

    def load_arrays(self, key: str) -> dict[str, np.ndarray]:
        """All ``.npy`` (by stem) and ``.npz`` members (by member name) of an entry. KeyError if absent."""
        p = self.path(key)
        if not (p / RECORD).is_file():
            raise KeyError(key)
        out: dict[str, np.ndarray] = {}
        for f in sorted(p.iterdir()):
            if f.suffix == ".npy":
                out[f.stem] = np.load(f, allow_pickle=False)
            elif f.suffix == ".npz":
                with np.load(f, allow_pickle=False) as z:
                    for name in z.files:
                        out[name] = z[name]
        return out

    def entries(self) -> list[dict]:
        """Records of every complete entry, newest first (by ``created``)."""
        recs = []
        for p in self.entries_dir.iterdir() if self.entries_dir.is_dir() else []:
            if p.name.startswith("."):
                continue
            rec = self.record(p.name)
            if rec is not None:
                recs.append(rec)
        recs.sort(key=lambda r: r.get("created") or 0, reverse=True)
        return recs

    def size_bytes(self) -> int:
        """Total size of complete entries (from their records; measured on disk when a record lacks it)."""
        total = 0
        for rec in self.entries():
            size = rec.get("size")
            total += int(size) if isinstance(size, (int, float)) else dir_size(Path(rec["path"]))
        return total

    def thumbnail(self, key: str, max_gif_bytes: int = 4 * 1024**2) -> Path | None:
        """The picture that stands for an entry in a list: the first of :data:`THUMBNAIL_NAMES` it has, else
        a (not too large) animated GIF such as a zoom video's; None when it has no picture."""
        p = self.entries_dir / self.check_key(key)
        if not (p / RECORD).is_file():
            return None
        for name in THUMBNAIL_NAMES:
            if (p / name).is_file():
                return p / name
        for f in sorted(p.glob("*.gif")):
            if f.stat().st_size <= max_gif_bytes:
                return f
        return None

    def zip_bytes(self, key: str) -> bytes:
        """The entry's files (record included) as an in-memory zip, for a download button."""
        p = self.path(key)
        if not (p / RECORD).is_file():
            raise KeyError(key)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.name != ACCESS:
                    zf.write(f, arcname=f"{key}/{f.relative_to(p)}")
        return buf.getvalue()

    # --------------------------------------------------------------------------------------------- writes
    def new_temp_dir(self, tag: str = "put") -> Path:
        """A fresh empty folder under ``tmp/`` (same filesystem as the entries) named for this process.

        The pid in the name lets :meth:`cleanup_temp` tell a live writer's folder from a dead one's.
        """
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)[:120]
        p = self.tmp_dir / f"{safe}.{os.getpid()}.{secrets.token_hex(4)}"
        p.mkdir(parents=True)
        return p

    def commit(self, key: str, tmp_dir: str | os.PathLike, record: dict | None = None) -> Path:
        """Atomically turn a finished temp folder into the entry ``key``; return the entry's path.

        Every file is fsync'd, ``record.json`` (key, kind, spec, created, elapsed_s, status, size + the
        caller's fields) is written last, then the folder is renamed into place. If the entry already exists
        (another process computed the same spec), the existing one wins and the temp folder is removed: both
        hold the same content by construction of the key.
        """
        self.check_key(key)
        tmp = Path(tmp_dir)
        if tmp.parent.resolve() != self.tmp_dir.resolve():
            # A folder elsewhere may sit on another filesystem, where rename is not atomic: copy it in first.
            staged = self.new_temp_dir(f"commit-{key}")
            shutil.copytree(tmp, staged, dirs_exist_ok=True)
            tmp = staged
        for name in (RECORD, ACCESS):
            (tmp / name).unlink(missing_ok=True)
        for f in tmp.rglob("*"):
            if f.is_file():
                _fsync_file(f)
        size = dir_size(tmp)
        rec = dict(record or {})
        rec.setdefault("kind", key.rsplit("-", 1)[0])
        rec.setdefault("spec", None)
        rec.setdefault("created", time.time())
        rec.setdefault("elapsed_s", None)
        rec.setdefault("status", "done")
        rec["key"] = key
        rec["size"] = size
        write_json_atomic(tmp / RECORD, rec)
        (tmp / ACCESS).touch()
        _fsync_dir(tmp)
        final = self.entries_dir / key
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and (final / RECORD).is_file():
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                # An incomplete folder in entries/ (should not happen): move it aside, then retry once.
                self._remove_entry_dir(final)
                os.rename(tmp, final)
            else:
                raise
        _fsync_dir(self.entries_dir)
        self.cleanup_temp()
        self.evict(keep=(key,))
        return final

    def put(
        self,
        key: str,
        arrays: dict[str, np.ndarray] | None = None,
        files: dict[str, bytes | str] | None = None,
        record: dict | None = None,
    ) -> Path:
        """Write an entry from memory: ``arrays`` as ``<name>.npy``, ``files`` as given (bytes or text)."""
        self.check_key(key)
        tmp = self.new_temp_dir(f"put-{key}")
        try:
            for name, arr in (arrays or {}).items():
                np.save(tmp / f"{self.check_key(name)}.npy", np.asarray(arr), allow_pickle=False)
            for name, data in (files or {}).items():
                target = tmp / name
                if not target.resolve().is_relative_to(tmp.resolve()) or name in (RECORD, ACCESS):
                    raise ValueError(f"files: invalid file name {name!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data.encode() if isinstance(data, str) else bytes(data))
            return self.commit(key, tmp, record)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def delete(self, key: str) -> bool:
        """Remove an entry (renamed out of ``entries/`` first, so readers never see half of it)."""
        return self._remove_entry_dir(self.entries_dir / self.check_key(key))

    def clear(self) -> int:
        """Delete every entry; return how many were removed. Job records are not touched here."""
        n = 0
        for p in list(self.entries_dir.iterdir()):
            if not p.name.startswith("."):
                n += self._remove_entry_dir(p)
        return n

    def evict(self, keep: tuple[str, ...] = ()) -> list[str]:
        """Delete least-recently-used entries until the store fits its limit; return the evicted keys."""
        with self._lock():
            recs = self.entries()
            sizes = {
                r["key"]: int(r["size"]) if isinstance(r.get("size"), (int, float)) else dir_size(Path(r["path"]))
                for r in recs
            }
            total = sum(sizes.values())
            evicted: list[str] = []
            for rec in sorted(recs, key=lambda r: r.get("last_access") or 0):
                if total <= self.limit_bytes:
                    break
                if rec["key"] in keep:
                    continue
                if self.delete(rec["key"]):
                    total -= sizes[rec["key"]]
                    evicted.append(rec["key"])
            return evicted

    def cleanup_temp(self, max_age_s: float = STALE_TEMP_S) -> list[str]:
        """Remove temp folders left by dead processes (and foreign-named ones older than ``max_age_s``)."""
        removed = []
        if not self.tmp_dir.is_dir():
            return removed
        now = time.time()
        for p in self.tmp_dir.iterdir():
            parts = p.name.rsplit(".", 2)
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            try:
                age = now - p.stat().st_mtime
            except OSError:
                continue
            stale = (pid is not None and pid != os.getpid() and not pid_alive(pid)) or (
                pid is None and age > max_age_s
            )
            if stale:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p.name)
        return removed

    # -------------------------------------------------------------------------------------------- helpers
    def _remove_entry_dir(self, p: Path) -> bool:
        trash = self.tmp_dir / f"trash-{p.name}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            os.rename(p, trash)
        except FileNotFoundError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    @staticmethod
    def _touch(p: Path) -> None:
        try:
            os.utime(p / ACCESS)
        except OSError:
            pass

    @staticmethod
    def _access_time(p: Path) -> float | None:
        try:
            return (p / ACCESS).stat().st_mtime
        except OSError:
            try:
                return (p / RECORD).stat().st_mtime
            except OSError:
                return None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / ".store.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def default_store() -> Store:
    """The store at ``$FRACTAL_LAB_CACHE`` (else ``<repo>/cache/data``), re-reading the environment each call."""
    return Store()


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
