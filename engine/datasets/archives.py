"""Read a user's folder, zip or tar in memory, member by member, with its sizes checked before they are spent.

Files from users are untrusted: nothing is extracted to disk, member names that climb out of the archive and
links are refused, and the *declared* uncompressed sizes are checked against a limit before a byte is inflated.
A compressed tar declares nothing up front, so it is read once as a stream: the decompressed bytes are counted
as they come and reading stops the moment they pass the limit (a 2 MB ``.tar.gz`` can inflate to gigabytes).
Every problem is a ``ValueError`` starting ``archive:``, ``path:`` or ``upload:`` so a page can show it as is.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import posixpath
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from engine.settings import env_float

#: Default limit on the uncompressed bytes a user-supplied dataset may occupy. Override per call with
#: ``max_bytes=`` or for the whole process with ``$FRACTAL_LAB_MAX_DATASET_BYTES``.
DEFAULT_MAX_BYTES = 1 << 30


#: At most this many members in a zip or tar (each costs memory before any check on its contents).
MAX_MEMBERS = 200_000
#: A tar's own header blocks (GNU long names, pax records) may not be longer than this.
MAX_TAR_HEADER_BYTES = 1 << 20
#: Bytes a tar stream may hold beyond its members' data: headers and padding.
TAR_OVERHEAD_BYTES = 16 << 20
#: A tar's members are kept decompressed in memory up to this total; the rest are streamed to again when read.
TAR_HOLD_BYTES = 256 << 20
_CHUNK = 1 << 20


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

    def _check_total(self, total: int | None = None) -> None:
        total = sum(self.sizes.values()) if total is None else total
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
        if len(self.zf.infolist()) > MAX_MEMBERS:
            raise ValueError(f"archive: {label} has {len(self.zf.infolist()):,} members, over the limit of {MAX_MEMBERS:,}")
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


class _TooMuch(Exception):
    """Raised inside tarfile's reading by :class:`_TarStream`; turned into a ValueError by :class:`_TarArchive`."""


class _TarStream:
    """The decompressed bytes of a tar, read forward only, counted, and never past ``limit``.

    tarfile reads its headers through :meth:`read` (and GNU long names and pax records of whatever length a header
    declares), so no single read may exceed :data:`MAX_TAR_HEADER_BYTES`; member data comes through
    :meth:`read_data` in chunks. Skipping (``seek``) decompresses and discards, and counts too.
    """

    def __init__(self, inner, limit: int):
        self._inner, self.limit, self._pos = inner, limit, 0

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _pull(self, n: int) -> bytes:
        if self._pos + n > self.limit:
            raise _TooMuch(f"decompresses to more than {_mb(self.limit)} (max_bytes plus headers); refusing it")
        chunks = []
        while n > 0:
            chunk = self._inner.read(min(n, _CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            n -= len(chunk)
            self._pos += len(chunk)
        return b"".join(chunks)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > MAX_TAR_HEADER_BYTES:
            raise _TooMuch(f"has a tar header block of {n:,} bytes, over the limit of {MAX_TAR_HEADER_BYTES:,}")
        return self._pull(n)

    def read_data(self, n: int) -> bytes:
        return self._pull(n)

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise _TooMuch("needs to seek backwards, which a stream cannot")
        while self._pos < pos:
            if not self._pull(min(pos - self._pos, _CHUNK)):
                break
        return self._pos


def _decompressor(data: bytes):
    """A file object of ``data`` decompressed (gzip, bzip2, xz) or as is, chosen by its magic bytes."""
    raw = io.BytesIO(data)
    if data[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)
    if data[:3] == b"BZh":
        return bz2.BZ2File(raw)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw)
    return raw


class _TarArchive(_Archive):
    """A tar read once, as a stream, to list and check it: each member's declared size before its data is read.

    Members are kept in memory while they total at most :data:`TAR_HOLD_BYTES` (CIFAR's archives fit); past that
    a member is only located, and :meth:`read` streams to it again (forward when it can, else from the start), so
    a large archive never sits in memory decompressed.
    """

    def __init__(self, data: bytes, label: str, max_bytes: int):
        super().__init__(label, max_bytes)
        self._raw, self._limit = data, max_bytes + TAR_OVERHEAD_BYTES
        self._held: dict[str, bytes] = {}
        self._where: dict[str, tuple[int, int]] = {}  # name -> (offset of its data, size)
        self._declared = self._held_bytes = 0
        self._cursor: _TarStream | None = None
        stream = _TarStream(_decompressor(data), self._limit)
        with self._reading("is not a readable tar file"):
            tf = tarfile.TarFile(fileobj=stream, mode="r")
            count = 0
            while (m := tf.next()) is not None:
                count += 1
                if count > MAX_MEMBERS:
                    raise ValueError(f"archive: {label} has more than {MAX_MEMBERS:,} members, over the limit")
                self._member(m, stream)

    @contextlib.contextmanager
    def _reading(self, what: str):
        try:
            yield
        except _TooMuch as exc:
            raise ValueError(f"archive: {self.label} {exc}") from None
        except (tarfile.TarError, OSError, EOFError, UnicodeError, zlib.error, lzma.LZMAError, RecursionError) as exc:
            raise ValueError(f"archive: {self.label} {what} ({exc})") from None

    def _member(self, m: tarfile.TarInfo, stream: _TarStream) -> None:
        name = _check_member_name(m.name)
        if m.issym() or m.islnk():
            raise ValueError(f"archive: member {m.name!r} is a link; links are not accepted in datasets")
        if not m.isfile():
            return
        if m.issparse():
            raise ValueError(f"archive: member {m.name!r} is a sparse file; sparse files are not accepted in datasets")
        self.sizes[name] = m.size
        self._declared += m.size
        self._check_total(self._declared)  # before a byte of this member is read
        self._where[name] = (m.offset_data, m.size)
        if _ignored(name) or self._held_bytes + m.size > TAR_HOLD_BYTES:
            return  # tarfile skips its data (still decompressed and counted by the stream)
        if stream.tell() != m.offset_data:
            raise ValueError(f"archive: member {m.name!r} of {self.label} is not where its header says")
        data = stream.read_data(m.size)
        if len(data) != m.size:
            raise ValueError(f"archive: member {m.name!r} of {self.label} is truncated")
        self._held[name] = data
        self._held_bytes += m.size

    def read(self, name: str) -> bytes:
        if name in self._held:
            return self._capped(name, self._held[name])
        offset, size = self._where[name]
        with self._reading(f"cannot be read again at member {name!r}"):
            if self._cursor is None or self._cursor.tell() > offset:
                self._cursor = _TarStream(_decompressor(self._raw), self._limit)
            self._cursor.seek(offset)
            data = self._cursor.read_data(size)
        if len(data) != size:
            raise ValueError(f"archive: member {name!r} of {self.label} is truncated")
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
        return _TarArchive(data, f"tar {name!r}", max_bytes)
    return _SingleFile(name, data, max_bytes)


def _gunzip(data: bytes, name: str, max_bytes: int) -> bytes:
    """Decompress a .gz member chunk by chunk, stopping (with an error) as soon as it exceeds the limit."""
    chunks, total = [], 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            while chunk := gz.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise ValueError(f"archive: {name!r} decompresses to more than {_mb(max_bytes)} (max_bytes); refusing it")
                chunks.append(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"archive: {name!r} is not a readable gzip file ({exc})") from None
    return b"".join(chunks)


def _find_member(names: Iterable[str], base: str) -> str | None:
    """The member whose file name is ``base`` (anywhere in the tree), shallowest first."""
    hits = [n for n in names if posixpath.basename(n) == base]
    return min(hits, key=lambda n: (n.count("/"), n)) if hits else None
