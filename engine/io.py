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


# ------------------------------------------------------------------------------------------ reading stored files
# A stored result may be damaged on disk (a truncated copy, a flipped bit, a hand edit): readers check a file's
# structure before trusting it and raise ``DamagedResult`` naming the file, never a numpy/JSON/PNG traceback
# and never an allocation the file does not back.
PNG_SIGNATURE, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def damaged(path: str | os.PathLike, what: str):
    """A :class:`~engine.errors.DamagedResult` that names the file (``"<name>: <what>"``)."""
    from engine.errors import DamagedResult

    return DamagedResult(f"{Path(path).name}: {what}", path=str(path))


def read_stored_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes; ``DamagedResult`` when it is missing or unreadable."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise damaged(path, "missing") from None
    except OSError as exc:
        raise damaged(path, f"unreadable ({exc.strerror or exc})") from None


def read_stored_json(path: str | os.PathLike, kind: type | None = dict) -> Any:
    """The JSON value in ``path`` (of type ``kind`` unless None); ``DamagedResult`` when missing or unparsable."""
    try:
        value = json.loads(read_stored_bytes(path))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise damaged(path, f"not valid JSON ({str(exc)[:120]})") from None
    if kind is not None and not isinstance(value, kind):
        raise damaged(path, f"holds a JSON {type(value).__name__}, expected a {kind.__name__}")
    return value


def read_stored_text(path: str | os.PathLike) -> str:
    """UTF-8 text without NUL bytes (what a CSV or JSON file we wrote holds); ``DamagedResult`` otherwise."""
    try:
        text = read_stored_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise damaged(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if "\0" in text:
        raise damaged(path, "holds NUL bytes (not a text file)")
    return text


def check_npy(path: str | os.PathLike) -> tuple[tuple[int, ...], Any]:
    """``(shape, dtype)`` of a ``.npy`` file whose header parses and whose length matches it exactly (read from
    the header only, so a forged shape allocates nothing); ``DamagedResult`` otherwise."""
    import numpy as np

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _fortran, dtype = read_header(fh, max_header_size=100_000)
            offset = fh.tell()
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        raise damaged(path, "missing") from None
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise damaged(path, f"not a readable .npy array ({str(exc)[:120]})") from None
    if dtype.hasobject:
        raise damaged(path, "holds Python objects, not numbers")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size - offset != expected:
        raise damaged(path, f"truncated or padded: {size - offset} bytes of data, its header says {expected}")
    return tuple(shape), dtype


def read_stored_npy(path: str | os.PathLike):
    """The array in a ``.npy`` file after :func:`check_npy`; ``DamagedResult`` when it cannot be trusted."""
    import numpy as np

    check_npy(path)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise damaged(path, f"not a readable .npy array ({str(exc)[:120]})") from None


def check_picture(path: str | os.PathLike, data: bytes | None = None) -> bytes:
    """The bytes of a PNG or GIF that is complete (its signature and its end marker are there)."""
    data = read_stored_bytes(path) if data is None else data
    if data.startswith(PNG_SIGNATURE):
        if not data.endswith(PNG_END):
            raise damaged(path, "truncated PNG (no end chunk)")
    elif data.startswith((b"GIF87a", b"GIF89a")):
        if not data.endswith(b";"):
            raise damaged(path, "truncated GIF (no trailer)")
    else:
        raise damaged(path, "not a PNG or GIF picture")
    return data


def check_safetensors(path: str | os.PathLike) -> dict:
    """The header of a ``.safetensors`` file whose length matches its tensors' byte ranges exactly."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= n <= min(size - 8, 100 * 1024**2):
                raise damaged(path, "truncated or not a safetensors file (bad header length)")
            header = json.loads(fh.read(n))
    except FileNotFoundError:
        raise damaged(path, "missing") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise damaged(path, f"unreadable safetensors header ({str(exc)[:120]})") from None
    except OSError as exc:
        raise damaged(path, f"unreadable ({exc.strerror or exc})") from None
    if not isinstance(header, dict):
        raise damaged(path, "unreadable safetensors header (not a table)")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise damaged(path, f"unreadable safetensors header (tensor {str(name)[:40]!r})")
        end = max(end, offsets[1])
    if size != 8 + n + end:
        raise damaged(path, f"truncated or padded: {size} bytes, its header says {8 + n + end}")
    return header


def check_stored_file(path: str | os.PathLike) -> None:
    """Check a file's structure by its type (``.npy``, ``.npz``, ``.json``, ``.csv``, ``.png``/``.gif``,
    ``.safetensors``); other files are only read. For results stored before checksums existed."""
    import zipfile

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        check_npy(path)
    elif suffix == ".npz":
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise damaged(path, f"not a readable .npz archive ({str(exc)[:120]})") from None
        if bad is not None:
            raise damaged(path, f"member {bad!r} fails its CRC")
    elif suffix == ".json":
        read_stored_json(path, kind=None)
    elif suffix == ".csv":
        read_stored_text(path)
    elif suffix in (".png", ".gif"):
        check_picture(path)
    elif suffix == ".safetensors":
        check_safetensors(path)
    else:  # a video or other blob: it must at least open (its bytes are not read into memory)
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except FileNotFoundError:
            raise damaged(path, "missing") from None
        except OSError as exc:
            raise damaged(path, f"unreadable ({exc.strerror or exc})") from None
