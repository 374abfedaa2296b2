"""The result store: ``f"{kind}-{spec.content_hash()}"`` -> a folder of result files plus ``record.json``.

Content-addressed, so the same spec is never computed twice and a new engine version never serves stale
results. Entries are written in ``tmp/`` and moved into ``entries/`` with one rename (readers see all or
nothing; a killed writer leaves only ``tmp/`` litter that :meth:`Store.cleanup_temp` removes). The least
recently read entries are evicted past ``$FRACTAL_LAB_CACHE_LIMIT_GB``. ``jobs/`` under the root belongs to
:mod:`runs`.

Trust nothing on disk: ``record.json`` holds every file's sha256 and :meth:`Store.verify` checks them before a
read (:class:`engine.errors.DamagedResult` otherwise); an entry whose record is unreadable counts as absent, so
it is recomputed and replaced, yet still counted and evicted. A reader holds a shared ``flock`` on the entry's
folder (:meth:`Store.reading`) and eviction skips entries so held, so a result never vanishes mid-read.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import logging
import os
import secrets
import shutil
import string
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cache import integrity, settings
from engine.errors import DamagedResult
from engine.io import damaged, read_stored_npy, write_json_atomic

RECORD = "record.json"
# Files that stand for an entry in the Runs list, in order of preference (grids write image.png).
THUMBNAIL_NAMES = ("image.png", "thumbnail.png", "preview.png")
ACCESS = ".last_access"
# A temp folder whose writer pid cannot be checked (foreign name) is treated as stale after this long.
STALE_TEMP_S = 6 * 3600
# A key is a folder name (plus a suffix or two in tmp/): well under the 255 bytes a file name may have.
MAX_KEY_LEN = 200
KEY_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
# How long an explicit delete waits for readers to let go before it removes the entry anyway.
DELETE_WAIT_S = 10.0

log = logging.getLogger(__name__)


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
        # absolute once, here: a worker started in another folder must find the same store
        self.root = settings.absolute(root) if root is not None else settings.cache_root()
        if limit_bytes is not None and limit_bytes <= 0:
            raise ValueError(f"limit_bytes: must be > 0, got {limit_bytes}")
        self.limit_bytes = int(limit_bytes) if limit_bytes is not None else settings.limit_bytes()
        self.entries_dir = self.root / "entries"
        self.tmp_dir = self.root / "tmp"
        try:
            for d in (self.entries_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            name = "root" if root is not None else "FRACTAL_LAB_CACHE"
            raise ValueError(f"{name}: must be a folder this process can create and write, got "
                             f"{str(self.root)[:200]!r} ({exc.strerror or exc})") from None

    def __repr__(self) -> str:
        return f"Store(root={str(self.root)!r}, limit_bytes={self.limit_bytes})"

    # ----------------------------------------------------------------------------------------------- keys
    @staticmethod
    def key(kind: str, spec: Any, extra: str = "") -> str:
        """The store key of ``spec`` computed as ``kind``: ``f"{kind}-{spec.content_hash(extra)}"``."""
        if not isinstance(kind, str) or not kind or not all(c.isalnum() or c in "_." for c in kind):
            raise ValueError(f"kind: must be a non-empty name of letters, digits, '_' or '.', got {kind!r}")
        return Store.check_key(f"{kind}-{spec.content_hash(extra)}")

    @staticmethod
    def check_key(key: str) -> str:
        """``key`` itself, or ``ValueError`` unless it is 1..:data:`MAX_KEY_LEN` ASCII letters, digits, ``_``,
        ``.`` or ``-`` not starting with ``.``: never a path, never longer than a file name may be."""
        if (not isinstance(key, str) or not key or len(key) > MAX_KEY_LEN or key.startswith(".")
                or not KEY_CHARS.issuperset(key)):
            shown = repr(key) if not isinstance(key, str) or len(key) <= 60 else f"{key[:57]!r}…"
            size = f" ({len(key)} characters)" if isinstance(key, str) else ""
            raise ValueError(f"key: must be 1 to {MAX_KEY_LEN} characters of letters, digits, '_', '.' or '-' "
                             f"(not starting with '.'), got {shown}{size}")
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
        """True when a complete entry exists: ``record.json`` (written last) is there and parses. An entry
        with an empty or corrupt record counts as absent, so it is computed again (and replaced)."""
        return _read_record(self.entries_dir / self.check_key(key)) is not None

    def record(self, key: str) -> dict | None:
        """The entry's record (plus ``path`` and ``last_access``), or None when there is no such entry (or its
        record is unreadable: see :meth:`damage`)."""
        p = self.entries_dir / self.check_key(key)
        rec = _read_record(p)
        if rec is None:
            return None
        rec.setdefault("key", key)
        rec["path"] = str(p)
        rec["last_access"] = self._access_time(p)
        return rec

    def damage(self, key: str) -> str | None:
        """Why the folder ``entries/<key>`` is no entry although it exists (its record is missing, empty or
        corrupt), or None (a readable record, or no folder at all). Cheap: no checksums."""
        p = self.entries_dir / self.check_key(key)
        if not p.is_dir() or _read_record(p) is not None:
            return None
        return f"{RECORD} is missing, empty or unparsable"

    def files(self, key: str) -> list[str]:
        """Names (relative paths) of the entry's result files, without the record and sidecars."""
        p = self.entries_dir / self.check_key(key)
        if _read_record(p) is None:
            return []
        return integrity.entry_files(p, (RECORD, ACCESS))

    def verify(self, key: str) -> Path | None:
        """The entry's folder after checking every file against the sha256 its record holds (entries stored
        before checksums: each file must parse as its type); None when there is no entry; ``DamagedResult``
        naming the file otherwise. A pass is remembered in this process until a file of the entry changes."""
        p = self.entries_dir / self.check_key(key)
        rec = _read_record(p)
        if rec is None:
            if p.is_dir():
                raise damaged(p / RECORD, "missing, empty or unparsable")
            return None
        integrity.verify(p, rec, RECORD, (ACCESS,))
        return p

    @contextmanager
    def reading(self, key: str, verify: bool = True, touch: bool = True) -> Iterator[Path]:
        """``with store.reading(key) as folder:`` a lease on the entry while its files are read: eviction skips
        it and :meth:`delete` waits for it, so its files do not vanish mid-read. ``KeyError`` when there is no
        entry; ``DamagedResult`` when ``verify`` finds a damaged one. ``touch``: counts as a use (LRU)."""
        p = self.entries_dir / self.check_key(key)
        fd = _lock_entry(p, shared=True)
        if fd is None:
            raise KeyError(key)
        try:
            if verify:
                if self.verify(key) is None:
                    raise KeyError(key)
            elif _read_record(p) is None:
                raise KeyError(key)
            if touch:
                self._touch(p)
            yield p
        finally:
            os.close(fd)

    def load_arrays(self, key: str) -> dict[str, np.ndarray]:
        """All ``.npy`` (by stem) and ``.npz`` members (by member name) of an entry, checked first (see
        :meth:`verify`). KeyError if absent, ``DamagedResult`` if damaged."""
        out: dict[str, np.ndarray] = {}
        with self.reading(key) as p:
            for f in sorted(p.iterdir()):
                if f.suffix == ".npy":
                    out[f.stem] = read_stored_npy(f)
                elif f.suffix == ".npz":
                    try:
                        with np.load(f, allow_pickle=False) as z:
                            for name in z.files:
                                out[name] = z[name]
                    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                        raise damaged(f, f"not a readable .npz archive ({str(exc)[:120]})") from None
        return out

    def entries(self) -> list[dict]:
        """Records of every entry, newest first (by ``created``). A folder whose record is unreadable is
        listed too, as ``{"key", "path", "damaged": why, "size", "created", "last_access"}``, so it is counted
        and evicted instead of leaking."""
        recs = []
        for p in self.entries_dir.iterdir() if self.entries_dir.is_dir() else []:
            if p.name.startswith(".") or not _valid_key(p.name):
                continue
            rec = self.record(p.name)
            if rec is None:
                rec = self._damaged_record(p)
            if rec is not None:
                recs.append(rec)
        recs.sort(key=lambda r: _number(r.get("created")) or 0.0, reverse=True)
        return recs

    def size_bytes(self) -> int:
        """Total size of the entries (from their records; measured on disk when a record lacks it)."""
        return sum(_size_of(rec) for rec in self.entries())

    def thumbnail(self, key: str, max_gif_bytes: int = 4 * 1024**2) -> Path | None:
        """The picture that stands for an entry in a list: the first of :data:`THUMBNAIL_NAMES` it has, else
        a (not too large) animated GIF such as a zoom video's; None when it has no picture or is damaged."""
        try:
            p = self.verify(key)
        except DamagedResult:
            return None
        if p is None:
            return None
        for name in THUMBNAIL_NAMES:
            if (p / name).is_file():
                return p / name
        for f in sorted(p.glob("*.gif")):
            if f.stat().st_size <= max_gif_bytes:
                return f
        return None

    def zip_bytes(self, key: str) -> bytes:
        """The entry's files (record included) as an in-memory zip, for a download button (checked first:
        ``DamagedResult`` rather than damaged bytes; ``KeyError`` when absent)."""
        buf = io.BytesIO()
        with self.reading(key) as p:
            with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name in integrity.entry_files(p, (ACCESS,)):
                    zf.write(p / name, arcname=f"{key}/{name}")
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

    def commit(self, key: str, tmp_dir: str | os.PathLike, record: dict | None = None, move: bool = False) -> Path:
        """Atomically turn a finished temp folder into the entry ``key``; return the entry's path.

        Every file is fsync'd and hashed, ``record.json`` (key, kind, spec, created, elapsed_s, status, size,
        sha256 + the caller's fields) is written last, then the folder is renamed into place. If the entry
        already exists (another process computed the same spec), the existing one wins and the temp folder is
        removed: both hold the same content by construction of the key; a damaged existing one is replaced.
        A folder outside ``tmp/`` is copied in first, unless ``move`` and it is on the store's file system
        (a job's working folder): then it is renamed itself.
        """
        self.check_key(key)
        tmp = Path(tmp_dir)
        if tmp.parent.resolve() != self.tmp_dir.resolve() and not (move and _same_device(tmp, self.entries_dir)):
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
        sums = integrity.checksums(tmp, (RECORD, ACCESS))
        rec = dict(record or {})
        rec.setdefault("kind", key.rsplit("-", 1)[0])
        rec.setdefault("spec", None)
        rec.setdefault("created", time.time())
        rec.setdefault("elapsed_s", None)
        rec.setdefault("status", "done")
        rec["key"] = key
        rec["size"] = size
        rec["sha256"] = sums
        write_json_atomic(tmp / RECORD, rec)
        (tmp / ACCESS).touch()
        _fsync_dir(tmp)
        final = self.entries_dir / key
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if self._intact(key):
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            # A damaged or incomplete folder holds the key: move it aside, then retry once.
            log.warning("store: replacing the damaged entry %s", key)
            self._remove_entry_dir(final, wait_s=DELETE_WAIT_S, force=True)
            try:
                os.rename(tmp, final)
            except OSError as again:
                if again.errno in (errno.ENOTEMPTY, errno.EEXIST) and self._intact(key):
                    shutil.rmtree(tmp, ignore_errors=True)  # another writer put a good one there meanwhile
                    return final
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

    def delete(self, key: str, wait_s: float = DELETE_WAIT_S) -> bool:
        """Remove an entry (renamed out of ``entries/`` first, so readers never see half of it). Readers holding
        it (:meth:`reading`) are given up to ``wait_s`` seconds to finish; an explicit delete then goes ahead."""
        return self._remove_entry_dir(self.entries_dir / self.check_key(key), wait_s=wait_s, force=True)

    def clear(self) -> int:
        """Delete every entry; return how many were removed. Job records are not touched here."""
        n = 0
        for p in list(self.entries_dir.iterdir()):
            if not p.name.startswith("."):
                n += self._remove_entry_dir(p, wait_s=DELETE_WAIT_S, force=True)
        return n

    def evict(self, keep: tuple[str, ...] = ()) -> list[str]:
        """Delete least-recently-used entries until the store fits its limit; return the evicted keys. An entry
        a reader holds (:meth:`reading`) is skipped, never deleted under it; damaged folders count and go too."""
        with self._lock():
            recs = self.entries()
            sizes = {r["key"]: _size_of(r) for r in recs}
            total = sum(sizes.values())
            evicted: list[str] = []
            for rec in sorted(recs, key=lambda r: _number(r.get("last_access")) or 0.0):
                if total <= self.limit_bytes:
                    break
                if rec["key"] in keep:
                    continue
                if self._remove_entry_dir(Path(rec["path"]), wait_s=0.0, force=False):
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
    def _remove_entry_dir(self, p: Path, wait_s: float = 0.0, force: bool = False) -> bool:
        """Rename ``p`` out of ``entries/`` under an exclusive lock on it, then delete it. While readers hold
        it: wait up to ``wait_s``; then give up (False) unless ``force``."""
        if not p.is_dir() or p.is_symlink():
            try:
                p.unlink()
                return True
            except (FileNotFoundError, IsADirectoryError):
                return False
        fd = _lock_entry(p, shared=False, wait_s=wait_s)
        if fd is None:
            if not p.exists():
                return False
            if not force:
                return False
            log.warning("store: deleting %s although a reader still holds it", p.name)
        trash = self.tmp_dir / f"trash-{p.name}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            os.rename(p, trash)
        except FileNotFoundError:
            return False
        finally:
            if fd is not None:
                os.close(fd)
        integrity.forget(p)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def _intact(self, key: str) -> bool:
        try:
            return self.verify(key) is not None
        except DamagedResult:
            return False

    def _damaged_record(self, p: Path) -> dict | None:
        """The stand-in record of an entry folder whose own record cannot be read (None if it is gone)."""
        try:
            created = p.stat().st_mtime
        except OSError:
            return None
        return {"key": p.name, "kind": p.name.rsplit("-", 1)[0], "path": str(p), "created": created,
                "last_access": self._access_time(p), "size": dir_size(p),
                "damaged": f"{RECORD} is missing, empty or unparsable", "spec": None}

    @staticmethod
    def _touch(p: Path) -> None:
        try:
            os.utime(p / ACCESS)
        except OSError:
            pass

    @staticmethod
    def _access_time(p: Path) -> float | None:
        for f in (p / ACCESS, p / RECORD, p):
            try:
                return f.stat().st_mtime
            except OSError:
                continue
        return None

    def _lock(self):
        return exclusive_lock(self.root / ".store.lock")


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """``with exclusive_lock(path):`` an flock on ``path`` (created if missing), held across processes for the
    block: the one lock behind the store, the job registry and the measured rates."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_record(p: Path) -> dict | None:
    """The parsed ``record.json`` of an entry folder; None when it is missing, empty, corrupt or not a table."""
    try:
        rec = json.loads((p / RECORD).read_bytes())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None


def _valid_key(name: str) -> bool:
    try:
        Store.check_key(name)
    except ValueError:
        return False
    return True


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _size_of(rec: dict) -> int:
    size = _number(rec.get("size"))
    return int(size) if size is not None and size >= 0 else dir_size(Path(rec["path"]))


def _same_device(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def _lock_entry(p: Path, shared: bool, wait_s: float = 0.0) -> int | None:
    """An fd of the entry folder ``p`` holding a shared (reader) or exclusive (deleter) ``flock``, or None
    when the folder is gone (or, for exclusive, still held after ``wait_s``). The lock sits on the folder
    itself, so no lock file is left behind; after locking, ``p`` must still be that folder (a delete may have
    renamed it away meanwhile, and a new entry may have taken the name: then try again)."""
    deadline = time.monotonic() + wait_s
    for _ in range(100):
        try:
            fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            try:
                if shared:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                else:
                    while True:
                        try:
                            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                            break
                        except BlockingIOError:
                            if time.monotonic() >= deadline:
                                os.close(fd)
                                return None
                            time.sleep(0.02)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                # a file system without flock on folders (some network mounts): read without a lease
                log.warning("store: no read leases on this file system (%s)", exc)
            here, mine = os.stat(p), os.fstat(fd)
            if (here.st_ino, here.st_dev) == (mine.st_ino, mine.st_dev):
                return fd
        except FileNotFoundError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # replaced by a newer entry of the same key: lock that one
    return None


def default_store() -> Store:
    """The store at ``$FRACTAL_LAB_CACHE`` (else ``<repo>/cache/data``), re-reading the environment each call."""
    return Store()


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
