"""Read a user's folder, zip or tar in memory, member by member, with its declared sizes checked first.

Files from users are untrusted: nothing is extracted to disk, member names that climb out of the archive and
links are refused, and the *declared* uncompressed sizes are checked against a limit before a byte is inflated.
Every problem is a ``ValueError`` starting ``archive:``, ``path:`` or ``upload:`` so a page can show it as is.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from engine.settings import env_float

#: Default limit on the uncompressed bytes a user-supplied dataset may occupy. Override per call with
#: ``max_bytes=`` or for the whole process with ``$FRACTAL_LAB_MAX_DATASET_BYTES``.
DEFAULT_MAX_BYTES = 1 << 30


def default_max_bytes() -> int:
    """The archive size limit in force: ``$FRACTAL_LAB_MAX_DATASET_BYTES`` if set, else :data:`DEFAULT_MAX_BYTES`."""
    return int(env_float("FRACTAL_LAB_MAX_DATASET_BYTES", DEFAULT_MAX_BYTES, 1, 1e15))


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _check_member_name(name: str) -> str:
    """Normalise an archive member name; refuse absolute paths and '..' (path traversal)."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or ".." in raw.split("/"):
        raise ValueError(f"archive: member {name!r} points outside the archive (path traversal); refusing it")
    norm = posixpath.normpath(raw)
    if norm.startswith("../") or norm == "..":
        raise ValueError(f"archive: member {name!r} points outside the archive (path traversal); refusing it")
    return norm


def _ignored(name: str) -> bool:
    parts = name.split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts if p)


class _Archive:
    """A read-only view of named files: ``sizes`` (declared bytes per file) and ``read(name)``."""

    def __init__(self, label: str, max_bytes: int):
        self.label = label
        self.max_bytes = max_bytes
        self.sizes: dict[str, int] = {}

    def _check_total(self) -> None:
        total = sum(self.sizes.values())
        if total > self.max_bytes:
            raise ValueError(
                f"archive: {self.label} declares {_mb(total)} uncompressed, over the limit of {_mb(self.max_bytes)} "
                f"(max_bytes); refusing to extract it"
            )

    def names(self) -> list[str]:
        return sorted(n for n in self.sizes if not _ignored(n))

    def read(self, name: str) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def _capped(self, name: str, data: bytes) -> bytes:
        if len(data) > self.sizes.get(name, len(data)) or len(data) > self.max_bytes:
            raise ValueError(f"archive: member {name!r} is larger than it declares; refusing it")
        return data


class _DirArchive(_Archive):
    def __init__(self, root: Path, max_bytes: int):
        super().__init__(f"folder {root.name!r}", max_bytes)
        self.root = root
        for p in sorted(root.rglob("*")):
            if p.is_file():
                rel = p.relative_to(root).as_posix()
                if not _ignored(rel):
                    self.sizes[rel] = p.stat().st_size
        self._check_total()

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


class _ZipArchive(_Archive):
    def __init__(self, fileobj, label: str, max_bytes: int):
        super().__init__(label, max_bytes)
        try:
            self.zf = zipfile.ZipFile(fileobj)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"archive: {label} is not a readable zip file ({exc})") from None
        self._infos = {}
        for info in self.zf.infolist():
            if info.is_dir():
                _check_member_name(info.filename)
                continue
            name = _check_member_name(info.filename)
            self.sizes[name] = info.file_size
            self._infos[name] = info
        self._check_total()

    def read(self, name: str) -> bytes:
        info = self._infos[name]
        try:
            with self.zf.open(info) as fh:
                data = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, NotImplementedError) as exc:
            raise ValueError(f"archive: member {name!r} of {self.label} cannot be read ({exc})") from None
        return self._capped(name, data)


class _TarArchive(_Archive):
    def __init__(self, fileobj, label: str, max_bytes: int):
        super().__init__(label, max_bytes)
        try:
            self.tf = tarfile.open(fileobj=fileobj, mode="r:*")
            members = self.tf.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ValueError(f"archive: {label} is not a readable tar file ({exc})") from None
        self._members = {}
        for m in members:
            name = _check_member_name(m.name)
            if m.issym() or m.islnk():
                raise ValueError(f"archive: member {m.name!r} is a link; links are not accepted in datasets")
            if m.isfile():
                self.sizes[name] = m.size
                self._members[name] = m
        self._check_total()

    def read(self, name: str) -> bytes:
        try:
            fh = self.tf.extractfile(self._members[name])
            data = fh.read(self._members[name].size + 1) if fh else b""
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ValueError(f"archive: member {name!r} of {self.label} cannot be read ({exc})") from None
        return self._capped(name, data)


class _SingleFile(_Archive):
    def __init__(self, name: str, data: bytes, max_bytes: int):
        super().__init__(f"file {name!r}", max_bytes)
        self.sizes[name] = len(data)
        self._data = data
        self._check_total()

    def read(self, name: str) -> bytes:
        return self._data


def _is_tar_name(name: str) -> bool:
    n = name.lower()
    return n.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz"))


def _open_path(path: str | os.PathLike, max_bytes: int) -> _Archive:
    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"path: {str(p)!r} does not exist")
    if p.is_dir():
        return _DirArchive(p, max_bytes)
    if p.stat().st_size > max_bytes:
        raise ValueError(f"path: {p.name!r} is {_mb(p.stat().st_size)}, over the limit of {_mb(max_bytes)} (max_bytes)")
    return _open_bytes(p.read_bytes(), p.name, max_bytes)


def _open_bytes(data: bytes, filename: str, max_bytes: int) -> _Archive:
    if len(data) > max_bytes:
        raise ValueError(f"upload: {filename!r} is {_mb(len(data))}, over the limit of {_mb(max_bytes)} (max_bytes)")
    name = Path(filename).name or "upload"
    low = name.lower()
    if low.endswith(".zip"):
        return _ZipArchive(io.BytesIO(data), f"zip {name!r}", max_bytes)
    if _is_tar_name(low):
        return _TarArchive(io.BytesIO(data), f"tar {name!r}", max_bytes)
    return _SingleFile(name, data, max_bytes)


def _gunzip(data: bytes, name: str, max_bytes: int) -> bytes:
    """Decompress a .gz member, stopping (with an error) as soon as it exceeds the limit."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            out = gz.read(max_bytes + 1)
    except (OSError, EOFError) as exc:
        raise ValueError(f"archive: {name!r} is not a readable gzip file ({exc})") from None
    if len(out) > max_bytes:
        raise ValueError(f"archive: {name!r} decompresses to more than {_mb(max_bytes)} (max_bytes); refusing it")
    return out


def _find_member(names: Iterable[str], base: str) -> str | None:
    """The member whose file name is ``base`` (anywhere in the tree), shallowest first."""
    hits = [n for n in names if posixpath.basename(n) == base]
    return min(hits, key=lambda n: (n.count("/"), n)) if hits else None
