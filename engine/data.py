"""Image datasets with no download at run time: built-ins, files users bring, uploads — all checked.

Why this module exists: Fractal Lab must run offline, so every dataset is either shipped inside an installed
package (scikit-learn's 8x8 digits), generated (a seeded synthetic shape set), or a file the user already has
(CIFAR-10/100 python pickles, MNIST IDX, a folder or zip of images with one sub-folder per class, ``.npz``
arrays). Files from users are untrusted, so nothing is ever unpickled freely (CIFAR pickles go through a
restricted unpickler), nothing is extracted to disk (archives are read member by member in memory, after their
*declared* uncompressed sizes were checked against a limit), and every problem becomes a ``ValueError`` whose
message starts with what was wrong (``archive:``, ``pickle:``, ``npz:`` …) so a page can show it as is.

Every loader returns an :class:`ImageDataset`: float32 images ``(N, C, H, W)`` in [0, 1], int64 labels, class
names and the dataset's default :class:`Augmentation`. :data:`DATASETS` is the registry the pages list from.

>>> ds = load_dataset("digits", seed=0)
>>> ds.x_train.shape[1:], ds.num_classes
((1, 8, 8), 10)
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import posixpath
import struct
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from engine.specs import SpecMixin

#: Default limit on the uncompressed bytes a user-supplied dataset may occupy (archives are checked against
#: their declared sizes before anything is read). Override per call with ``max_bytes=`` or for the whole
#: process with the environment variable ``FRACTAL_LAB_MAX_DATASET_BYTES``.
DEFAULT_MAX_BYTES = 1 << 30

#: A single decoded image may not exceed this many pixels (guards against decompression bombs in PNG/JPEG).
MAX_IMAGE_PIXELS = 4096 * 4096

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def default_max_bytes() -> int:
    """The archive size limit in force: ``$FRACTAL_LAB_MAX_DATASET_BYTES`` if set, else :data:`DEFAULT_MAX_BYTES`."""
    env = os.environ.get("FRACTAL_LAB_MAX_DATASET_BYTES", "").strip()
    if env:
        try:
            value = int(float(env))
        except ValueError:
            raise ValueError(f"FRACTAL_LAB_MAX_DATASET_BYTES: {env!r} is not a number of bytes") from None
        if value <= 0:
            raise ValueError("FRACTAL_LAB_MAX_DATASET_BYTES: must be a positive number of bytes")
        return value
    return DEFAULT_MAX_BYTES


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# --------------------------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augmentation(SpecMixin):
    """Training-time augmentation: the standard CIFAR recipe (pad, random crop, random horizontal flip).

    Pad-crop shifts an image by up to ``pad_crop`` pixels (zero padding), which every dataset here tolerates.
    Horizontal flips are off where a flip changes the class's meaning or never occurs (digits, MNIST).
    """

    pad_crop: int = 0
    hflip: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.pad_crop, (int, np.integer)) or isinstance(self.pad_crop, bool):
            raise ValueError("pad_crop: must be an integer number of pixels in [0, 16]")
        if not 0 <= int(self.pad_crop) <= 16:
            raise ValueError(f"pad_crop: must be in [0, 16] pixels, got {self.pad_crop}")
        if not isinstance(self.hflip, (bool, np.bool_)):
            raise ValueError("hflip: must be true or false")

    @property
    def active(self) -> bool:
        return self.pad_crop > 0 or bool(self.hflip)


def augment_batch(x: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Return a randomly shifted (pad-crop) and possibly flipped copy of the batch ``x`` of shape (N, C, H, W).

    One gather does both: each sample's row and column indices into the zero-padded batch are drawn from
    ``generator`` (a CPU generator, so a seed reproduces the same augmentation on CPU and CUDA alike).
    """
    if x.dim() != 4:
        raise ValueError(f"x: expected a batch of shape (N, C, H, W), got {tuple(x.shape)}")
    if not aug.active or x.shape[0] == 0:
        return x
    n, c, h, w = x.shape
    p = int(aug.pad_crop)
    if p:
        oy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        ox = torch.randint(0, 2 * p + 1, (n,), generator=generator)
    else:
        oy = torch.zeros(n, dtype=torch.long)
        ox = torch.zeros(n, dtype=torch.long)
    ar_h = torch.arange(h)
    ar_w = torch.arange(w)
    rows = oy[:, None] + ar_h[None, :]  # (n, h)
    cols = ox[:, None] + ar_w[None, :]  # (n, w)
    if aug.hflip:
        flip = torch.rand(n, generator=generator) < 0.5
        cols = torch.where(flip[:, None], ox[:, None] + (w - 1 - ar_w)[None, :], cols)
    dev = x.device
    xp = torch.nn.functional.pad(x, (p, p, p, p)) if p else x
    idx_n = torch.arange(n, device=dev)[:, None, None, None]
    idx_c = torch.arange(c, device=dev)[None, :, None, None]
    return xp[idx_n, idx_c, rows.to(dev)[:, None, :, None], cols.to(dev)[:, None, None, :]]


# --------------------------------------------------------------------------------------------------------------
# The dataset object
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ImageDataset:
    """A train/test split of images, checked on construction so a bad file fails here, not deep in training."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    augmentation: Augmentation = field(default_factory=Augmentation)
    source: str = ""

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.ndim != 4:
                shape = getattr(x, "shape", None)
                raise ValueError(f"x_{split}: expected images of shape (N, C, H, W), got shape {shape}")
            if x.shape[1] not in (1, 3):
                raise ValueError(f"x_{split}: images must have 1 or 3 channels, got {x.shape[1]} (shape {x.shape})")
            if x.shape[2] < 4 or x.shape[3] < 4:
                raise ValueError(f"x_{split}: images must be at least 4x4 pixels, got {x.shape[2]}x{x.shape[3]}")
            if not isinstance(y, np.ndarray) or y.ndim != 1 or len(y) != len(x):
                raise ValueError(
                    f"y_{split}: expected {len(x)} labels (one per image), got shape {getattr(y, 'shape', None)}"
                )
            x = np.ascontiguousarray(x, dtype=np.float32)
            y = np.ascontiguousarray(y, dtype=np.int64)
            setattr(self, f"x_{split}", x)
            setattr(self, f"y_{split}", y)
        if len(self.x_train) == 0:
            raise ValueError("x_train: the training split is empty")
        if len(self.x_test) == 0:
            raise ValueError("x_test: the test split is empty")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"x_test: test images are {self.x_test.shape[1:]} but training images are {self.x_train.shape[1:]}"
            )
        k = len(self.classes)
        if k < 2:
            raise ValueError(f"classes: need at least 2 classes, got {k}")
        for split in ("train", "test"):
            y = getattr(self, f"y_{split}")
            if y.size and (y.min() < 0 or y.max() >= k):
                raise ValueError(f"y_{split}: labels must be in [0, {k - 1}], got [{y.min()}, {y.max()}]")
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            if x.size and (not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0):
                raise ValueError(f"x_{split}: pixel values must be finite and in [0, 1]")
        self.classes = [str(c) for c in self.classes]

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self, split: str = "train") -> list[int]:
        y = self.y_train if split == "train" else self.y_test
        return np.bincount(y, minlength=self.num_classes).tolist()

    def summary(self) -> dict:
        """A small JSON-able description (what a page shows and a run records)."""
        return {
            "name": self.name,
            "source": self.source,
            "train": int(len(self.x_train)),
            "test": int(len(self.x_test)),
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "augmentation": self.augmentation.to_dict(),
        }

    def fingerprint(self) -> str:
        """A short hash of the data itself: fold it into a cache key when the data came from a user's file."""
        h = hashlib.sha256()
        for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\x00".join(self.classes).encode())
        return h.hexdigest()[:16]


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split keeping each class's share in both parts (a class with one sample stays in train)."""
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        else:
            n_test = 0
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr = np.concatenate(train_idx)
    te = np.concatenate(test_idx)
    rng.shuffle(tr)
    rng.shuffle(te)
    return tr, te


def _subset(x: np.ndarray, y: np.ndarray, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if limit is None or limit >= len(x):
        return x, y
    if limit < 1:
        raise ValueError(f"max_train/max_test: must be a positive number of samples, got {limit}")
    idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
    return x[idx], y[idx]


def _to_nchw_unit(x: np.ndarray, what: str) -> np.ndarray:
    """Accept (N,H,W), (N,H,W,C) or (N,C,H,W) with C in {1,3}; uint8 in [0,255] or floats in [0,1]."""
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
            pass
        elif x.shape[3] in (1, 3):
            x = np.transpose(x, (0, 3, 1, 2))
        elif x.shape[1] not in (1, 3):
            raise ValueError(
                f"{what}: images must have 1 or 3 channels, as (N, H, W), (N, H, W, C) or (N, C, H, W); "
                f"got shape {x.shape}"
            )
    else:
        raise ValueError(f"{what}: expected images of shape (N, H, W), (N, H, W, C) or (N, C, H, W), got {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        if x.size and (x.min() < 0 or x.max() > 255):
            raise ValueError(f"{what}: integer pixels must be in [0, 255], got [{x.min()}, {x.max()}]")
        return x.astype(np.float32) / 255.0
    if np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
        if x.size and (not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0):
            raise ValueError(f"{what}: float pixels must be finite and in [0, 1] (or give uint8 in [0, 255])")
        return x
    raise ValueError(f"{what}: unsupported pixel dtype {x.dtype} (use uint8 or float)")


def _labels(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{what}: labels must be a 1-D array of class indices, got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        if np.issubdtype(y.dtype, np.floating) and y.size and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"{what}: labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"{what}: labels must be >= 0, got {y.min()}")
    return y


# --------------------------------------------------------------------------------------------------------------
# Archives: a folder, a zip or a tar, read in memory with their sizes checked first
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Restricted unpickling (CIFAR python batches)
# --------------------------------------------------------------------------------------------------------------


def _np_core():
    return getattr(np, "_core", None) or np.core  # numpy >= 2 keeps the real module in numpy._core


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as Python 3 pickles of ``bytes`` use it — limited to the latin-1 case."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise ForbiddenGlobal("calls _codecs.encode other than as encode(str, 'latin1'), which is not allowed")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    core = _np_core()
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "bytearray"): bytearray,
        ("__builtin__", "set"): set,
        ("__builtin__", "frozenset"): frozenset,
        ("__builtin__", "bytearray"): bytearray,
        ("collections", "OrderedDict"): dict,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = core.multiarray._reconstruct
        allowed[(mod, "scalar")] = core.multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        if hasattr(core.numeric, "_frombuffer"):
            allowed[(mod, "_frombuffer")] = core.numeric._frombuffer
    return allowed


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle named a global outside the allowed set (or used persistent ids)."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only plain containers, numbers, strings, bytes and numpy arrays; anything else is refused.

    A pickle can name any importable callable (``os.system``…) and the standard unpickler will call it. CIFAR's
    python batches only need dicts, lists, bytes and numpy's array reconstruction helpers, so those are the
    only globals this unpickler resolves.
    """

    _ALLOWED: dict[tuple[str, str], object] | None = None

    def find_class(self, module: str, name: str):
        allowed = type(self)._ALLOWED
        if allowed is None:
            allowed = type(self)._ALLOWED = _allowed_globals()
        try:
            return allowed[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(
                f"refers to {module}.{name}, which is not allowed (only plain containers, numbers, strings, bytes "
                f"and numpy arrays are accepted)"
            ) from None

    def persistent_load(self, pid):
        raise ForbiddenGlobal("uses persistent ids, which are not allowed")


def safe_unpickle(data: bytes, what: str = "pickle") -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; any failure is a ``ValueError`` naming ``what``."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except ForbiddenGlobal as exc:
        raise ValueError(f"pickle: {what} {exc}") from None
    except Exception as exc:  # truncated or garbage data raises many kinds of errors
        raise ValueError(f"pickle: {what} is not a readable pickle ({type(exc).__name__}: {exc})") from None
    return obj


def _plain_keys(obj):
    if isinstance(obj, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    return obj


def _names(values) -> list[str]:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


# --------------------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------------------


def _load_digits(seed: int, **_) -> ImageDataset:
    """scikit-learn's 1,797 real 8x8 handwritten digits (shipped in the package), seeded stratified 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    tr, te = _stratified_split(y, 0.2, seed)
    return ImageDataset(
        "digits", x[tr], y[tr], x[te], y[te], [str(i) for i in range(10)], DATASETS["digits"].augmentation,
        source="sklearn.datasets.load_digits",
    )


SYNTHETIC_CLASSES = ["disc", "ring", "square", "frame", "triangle", "plus", "x-cross", "h-stripes", "v-stripes",
                     "checker"]


def _shape_masks(cls: int, u: np.ndarray, v: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """Boolean masks of class ``cls`` on centred, scaled coordinates u, v (shape (n, H, W))."""
    r2 = u * u + v * v
    box = np.maximum(np.abs(u), np.abs(v))
    inside = box < 1.0
    if cls == 0:
        return r2 < 1.0
    if cls == 1:
        return (r2 < 1.0) & (r2 > 0.36)
    if cls == 2:
        return box < 0.8
    if cls == 3:
        return (box < 0.95) & (box > 0.55)
    if cls == 4:
        return (v > -0.8) & (v < 0.8) & (np.abs(u) < (v + 0.8) * 0.6)
    if cls == 5:
        return ((np.abs(u) < 0.3) | (np.abs(v) < 0.3)) & inside
    if cls == 6:
        return ((np.abs(u - v) < 0.4) | (np.abs(u + v) < 0.4)) & inside
    if cls == 7:
        return (np.sin(v * freq) > 0) & inside
    if cls == 8:
        return (np.sin(u * freq) > 0) & inside
    return ((np.sin(u * freq) > 0) ^ (np.sin(v * freq) > 0)) & inside


def make_synthetic(n_train: int = 2000, n_test: int = 500, image_size: int = 16, seed: int = 0,
                   noise: float = 0.12) -> ImageDataset:
    """Ten classes of coloured shapes (disc, ring, square, frame, triangle, plus, x, stripes, checker).

    Learnable but not trivial: position, size and stripe frequency vary, foreground and background colours are
    random (so colour says nothing about the class), and Gaussian pixel noise is added. Deterministic in ``seed``.
    """
    if not 8 <= image_size <= 64:
        raise ValueError(f"image_size: synthetic images must be 8 to 64 pixels, got {image_size}")
    if n_train < 10 or n_test < 10:
        raise ValueError("n_train/n_test: need at least 10 samples (one per class) in each split")
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    # Balanced classes within each split (n_train/10 and n_test/10 per class, up to rounding).
    y = np.concatenate([rng.permutation(np.arange(n_train) % 10), rng.permutation(np.arange(n_test) % 10)])
    s = image_size
    grid = (np.arange(s, dtype=np.float32) + 0.5) / s * 2 - 1  # [-1, 1]
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    scale = rng.uniform(0.45, 0.8, n).astype(np.float32)
    cx = rng.uniform(-1, 1, n).astype(np.float32) * (1 - scale) * 0.9
    cy = rng.uniform(-1, 1, n).astype(np.float32) * (1 - scale) * 0.9
    freq = rng.uniform(2.5, 4.0, n).astype(np.float32)[:, None, None] * np.pi / 1.0
    u = (xx[None] - cx[:, None, None]) / scale[:, None, None]
    v = (yy[None] - cy[:, None, None]) / scale[:, None, None]
    mask = np.zeros((n, s, s), dtype=bool)
    for c in range(10):
        sel = y == c
        mask[sel] = _shape_masks(c, u[sel], v[sel], freq[sel])
    bg = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    fg = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    # Keep a visible contrast: push the foreground's brightness at least 0.35 away from the background's.
    diff = fg.mean(1) - bg.mean(1)
    shift = np.where(np.abs(diff) < 0.35, np.sign(diff + 1e-6) * 0.35 - diff, 0.0).astype(np.float32)
    fg = np.clip(fg + shift[:, None], 0, 1)
    img = np.where(mask[:, None], fg[:, :, None, None], bg[:, :, None, None])
    img = img + rng.normal(0, noise, img.shape).astype(np.float32)
    img = np.clip(img, 0, 1).astype(np.float32)
    y = y.astype(np.int64)
    return ImageDataset(
        "synthetic", img[:n_train], y[:n_train], img[n_train:], y[n_train:], list(SYNTHETIC_CLASSES),
        DATASETS["synthetic"].augmentation, source=f"generated (seed {seed}, {image_size}x{image_size})",
    )


def _load_synthetic(seed: int, image_size=None, **_) -> ImageDataset:
    return make_synthetic(image_size=int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size or 16),
                          seed=seed)


def _find_member(names: Iterable[str], base: str) -> str | None:
    """The member whose file name is ``base`` (anywhere in the tree), shallowest first."""
    hits = [n for n in names if posixpath.basename(n) == base]
    return min(hits, key=lambda n: (n.count("/"), n)) if hits else None


def _cifar_batch(arc: _Archive, member: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    obj = _plain_keys(safe_unpickle(arc.read(member), repr(member)))
    if not isinstance(obj, dict) or "data" not in obj or label_key not in obj:
        raise ValueError(f"cifar: {member!r} is not a CIFAR batch (expected a dict with 'data' and {label_key!r})")
    data = np.asarray(obj["data"])
    if data.dtype == object:
        raise ValueError(f"cifar: {member!r} holds object arrays, not pixel data")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"cifar: {member!r} data must be (N, 3072) bytes (3x32x32 images), got shape {data.shape}")
    labels = _labels(np.asarray(obj[label_key]), f"cifar: {member!r} {label_key}")
    if len(labels) != len(data):
        raise ValueError(f"cifar: {member!r} has {len(data)} images but {len(labels)} labels")
    x = _to_nchw_unit(data.reshape(-1, 3, 32, 32), f"cifar: {member!r} data")
    return x, labels


def _load_cifar(arc: _Archive, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    names = arc.names()
    if num_classes == 10:
        train_members = [m for m in (_find_member(names, f"data_batch_{i}") for i in range(1, 6)) if m]
        test_member = _find_member(names, "test_batch")
        meta, label_key, names_key = _find_member(names, "batches.meta"), "labels", "label_names"
        expected = "data_batch_1..5 and test_batch"
    else:
        tm = _find_member(names, "train")
        train_members = [tm] if tm else []
        test_member = _find_member(names, "test")
        meta, label_key, names_key = _find_member(names, "meta"), "fine_labels", "fine_label_names"
        expected = "train and test"
    if not train_members or not test_member:
        raise ValueError(f"cifar: {arc.label} does not contain the CIFAR-{num_classes} python files ({expected})")
    parts = [_cifar_batch(arc, m, label_key) for m in train_members]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = _cifar_batch(arc, test_member, label_key)
    classes = [str(i) for i in range(num_classes)]
    if meta:
        m = _plain_keys(safe_unpickle(arc.read(meta), repr(meta)))
        if isinstance(m, dict) and isinstance(m.get(names_key), (list, tuple)) and len(m[names_key]) == num_classes:
            classes = _names(m[names_key])
    for what, y in (("train", y_tr), ("test", y_te)):
        if y.size and y.max() >= num_classes:
            raise ValueError(f"cifar: {what} labels go up to {y.max()}, but CIFAR-{num_classes} has {num_classes} classes")
    return x_tr, y_tr, x_te, y_te, classes


def _make_cifar_loader(num_classes: int) -> Callable[..., ImageDataset]:
    key = f"cifar{num_classes}"

    def load(arc: _Archive, seed: int, **_) -> ImageDataset:
        x_tr, y_tr, x_te, y_te, classes = _load_cifar(arc, num_classes)
        return ImageDataset(key, x_tr, y_tr, x_te, y_te, classes, DATASETS[key].augmentation, source=arc.label)

    return load


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(data: bytes, what: str = "idx") -> np.ndarray:
    """Parse an IDX file (MNIST's format): magic 0,0,dtype,ndim, big-endian uint32 dims, then the values."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or not 1 <= data[3] <= 4:
        raise ValueError(f"idx: {what} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"idx: {what} is truncated (header)")
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"idx: {what} declares shape {tuple(dims)} ({expected} bytes of data) but holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def _mnist_member(names: list[str], split: str, kind: str) -> str | None:
    stem = {"train": "train", "test": "t10k"}[split]
    n_dims = "3" if kind == "images" else "1"
    candidates = [f"{stem}-{kind}-idx{n_dims}-ubyte", f"{stem}-{kind}.idx{n_dims}-ubyte"]
    for c in candidates:
        for suffix in ("", ".gz"):
            hit = _find_member(names, c + suffix)
            if hit:
                return hit
    return None


def _load_mnist(arc: _Archive, seed: int, **_) -> ImageDataset:
    names = arc.names()
    arrays = {}
    for split in ("train", "test"):
        for kind in ("images", "labels"):
            m = _mnist_member(names, split, kind)
            if m is None:
                raise ValueError(
                    f"mnist: {arc.label} lacks the {split} {kind} file (e.g. "
                    f"{'train' if split == 'train' else 't10k'}-{kind}-idx{3 if kind == 'images' else 1}-ubyte[.gz])"
                )
            raw = arc.read(m)
            if m.endswith(".gz"):
                raw = _gunzip(raw, m, arc.max_bytes)
            arrays[(split, kind)] = read_idx(raw, repr(m))
    out = {}
    for split in ("train", "test"):
        x, y = arrays[(split, "images")], arrays[(split, "labels")]
        if x.ndim != 3:
            raise ValueError(f"mnist: {split} images must be a 3-D IDX array (N, H, W), got shape {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"mnist: {split} has {len(x)} images but labels of shape {y.shape}")
        out[split] = (_to_nchw_unit(x, f"mnist: {split} images"), _labels(y, f"mnist: {split} labels"))
    k = int(max(out["train"][1].max(initial=0), out["test"][1].max(initial=0))) + 1
    classes = [str(i) for i in range(max(k, 10))]
    return ImageDataset("mnist", *out["train"], *out["test"], classes, DATASETS["mnist"].augmentation,
                        source=arc.label)


def _decode_image(data: bytes, name: str):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise ValueError(
                f"image: {name!r} is {img.width}x{img.height}, over the limit of {MAX_IMAGE_PIXELS} pixels"
            )
        img.load()
    except ValueError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image: {name!r} is not a readable image ({type(exc).__name__})") from None
    return img


def image_from_bytes(data: bytes, name: str, in_channels: int, size: tuple[int, int]) -> np.ndarray:
    """One user image (PNG, JPEG, …) as a model input: (C, H, W) float32 in [0, 1], grey or RGB, resized.

    This is how a page predicts on an uploaded picture: the same decoder and checks as the folder loader.
    """
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels: must be 1 or 3, got {in_channels}")
    h, w = (int(s) for s in size)
    if not (1 <= h <= 4096 and 1 <= w <= 4096):
        raise ValueError(f"size: must be (H, W) with sides in 1..4096, got {tuple(size)}")
    from PIL import Image

    img = _decode_image(data, name).convert("L" if in_channels == 1 else "RGB")
    if (img.height, img.width) != (h, w):
        img = img.resize((w, h), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


_SPLIT_DIRS = {"train": "train", "training": "train", "test": "test", "testing": "test", "val": "test",
               "valid": "test", "validation": "test"}


def _load_folder(arc: _Archive, seed: int, image_size=None, **_) -> ImageDataset:
    """Images in one sub-folder per class (optionally under train/ and test/); everything resized to one size."""
    files = [n for n in arc.names() if n.lower().endswith(IMAGE_EXTENSIONS)]
    if not files:
        raise ValueError(f"folder: {arc.label} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    parts = [n.split("/") for n in files]
    # Strip wrapper folders shared by every file (e.g. "pets/cat/1.png" -> "cat/1.png").
    while all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]
    split_layout = all(len(p) >= 3 and p[0].lower() in _SPLIT_DIRS for p in parts)
    if split_layout and {_SPLIT_DIRS[p[0].lower()] for p in parts} != {"train", "test"}:
        split_layout = False
    entries = []  # (split or None, class, member)
    for name, p in zip(files, parts):
        if split_layout:
            entries.append((_SPLIT_DIRS[p[0].lower()], p[1], name))
        else:
            if len(p) < 2:
                raise ValueError(
                    f"folder: image {name!r} is not inside a class sub-folder (expected one sub-folder per class)"
                )
            entries.append((None, p[0], name))
    classes = sorted({e[1] for e in entries})
    if len(classes) < 2:
        raise ValueError(f"folder: found {len(classes)} class sub-folder(s) ({', '.join(classes)}); need at least 2")
    index = {c: i for i, c in enumerate(classes)}
    images = [_decode_image(arc.read(m), m) for _, _, m in entries]
    if image_size is not None:
        size = (int(image_size), int(image_size)) if np.isscalar(image_size) else tuple(int(s) for s in image_size)
    else:
        size = Counter((im.height, im.width) for im in images).most_common(1)[0][0]
    h, w = size
    if not (4 <= h <= 512 and 4 <= w <= 512):
        raise ValueError(f"image_size: images must be 4 to 512 pixels a side, got {h}x{w}")
    needed = len(images) * 3 * h * w * 4
    if needed > arc.max_bytes * 4:
        raise ValueError(f"folder: {len(images)} images of {h}x{w} need {_mb(needed)} in memory, over the limit")
    from PIL import Image

    arr = np.empty((len(images), h, w, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        im = im.convert("RGB")
        if (im.height, im.width) != (h, w):
            im = im.resize((w, h), Image.BILINEAR)
        arr[i] = np.asarray(im)
    gray = bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
    x = arr[..., :1] if gray else arr
    x = np.transpose(x, (0, 3, 1, 2)).astype(np.float32) / 255.0
    y = np.array([index[e[1]] for e in entries], dtype=np.int64)
    if split_layout:
        is_test = np.array([e[0] == "test" for e in entries])
        tr, te = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    else:
        tr, te = _stratified_split(y, 0.2, seed)
    aug = Augmentation(pad_crop=max(1, min(h, w) // 8), hflip=True)
    return ImageDataset("folder", x[tr], y[tr], x[te], y[te], classes, aug, source=arc.label)


def _load_npz(arc: _Archive, seed: int, **_) -> ImageDataset:
    """``.npz`` with x_train, y_train[, x_test, y_test][, classes] — or x, y (then a seeded 80/20 split)."""
    members = [n for n in arc.names() if n.lower().endswith(".npz")]
    if not members:
        raise ValueError(f"npz: {arc.label} holds no .npz file")
    if len(members) > 1:
        raise ValueError(f"npz: {arc.label} holds {len(members)} .npz files; give exactly one")
    raw = arc.read(members[0])
    # An .npz is itself a zip: check its declared sizes before numpy inflates anything.
    inner = _ZipArchive(io.BytesIO(raw), f"npz {members[0]!r}", arc.max_bytes)
    try:
        z = np.load(io.BytesIO(raw), allow_pickle=False)
        keys = set(z.files)
        arrays = {k: z[k] for k in keys}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"npz: {members[0]!r} holds object arrays (pickled data), which are not accepted") from None
        raise ValueError(f"npz: {members[0]!r} cannot be read ({exc})") from None
    except Exception as exc:
        raise ValueError(f"npz: {members[0]!r} cannot be read ({type(exc).__name__}: {exc})") from None
    del inner
    if {"x_train", "y_train"} <= keys:
        x_tr = _to_nchw_unit(arrays["x_train"], "npz: x_train")
        y_tr = _labels(arrays["y_train"], "npz: y_train")
        if len(y_tr) != len(x_tr):
            raise ValueError(f"npz: x_train has {len(x_tr)} images but y_train has {len(y_tr)} labels")
        if {"x_test", "y_test"} <= keys:
            x_te = _to_nchw_unit(arrays["x_test"], "npz: x_test")
            y_te = _labels(arrays["y_test"], "npz: y_test")
            if len(y_te) != len(x_te):
                raise ValueError(f"npz: x_test has {len(x_te)} images but y_test has {len(y_te)} labels")
        else:
            tr, te = _stratified_split(y_tr, 0.2, seed)
            x_tr, y_tr, x_te, y_te = x_tr[tr], y_tr[tr], x_tr[te], y_tr[te]
    elif {"x", "y"} <= keys:
        x = _to_nchw_unit(arrays["x"], "npz: x")
        y = _labels(arrays["y"], "npz: y")
        if len(y) != len(x):
            raise ValueError(f"npz: x has {len(x)} images but y has {len(y)} labels")
        tr, te = _stratified_split(y, 0.2, seed)
        x_tr, y_tr, x_te, y_te = x[tr], y[tr], x[te], y[te]
    else:
        raise ValueError(
            f"npz: {members[0]!r} must hold arrays x_train and y_train (optionally x_test, y_test, classes) or x and y;"
            f" found {', '.join(sorted(keys)) or 'nothing'}"
        )
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise ValueError(f"npz: test images are {x_te.shape[1:]} but training images are {x_tr.shape[1:]}")
    k = int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1
    if "classes" in keys:
        classes = [str(c) for c in np.asarray(arrays["classes"]).tolist()]
        if len(classes) < k:
            raise ValueError(f"npz: classes names {len(classes)} classes but labels go up to {k - 1}")
    else:
        classes = [str(i) for i in range(k)]
    h, w = x_tr.shape[2:]
    aug = Augmentation(pad_crop=max(1, min(h, w) // 8), hflip=False)
    return ImageDataset("npz", x_tr, y_tr, x_te, y_te, classes, aug, source=arc.label)


# --------------------------------------------------------------------------------------------------------------
# Registry and entry points
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: what a page shows, whether a file is needed, the augmentation, and the loader."""

    name: str
    title: str
    description: str
    needs_path: bool
    augmentation: Augmentation
    loader: Callable[..., ImageDataset] = field(repr=False, compare=False)
    file_hint: str = ""


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(
        "digits", "Digits (8x8, built in)",
        "scikit-learn's 1,797 real handwritten digits, 8x8 grey, 10 classes; shipped with the package. "
        "Fixed seeded 80/20 split.",
        False, Augmentation(pad_crop=1, hflip=False), _load_digits,
    ),
    "synthetic": DatasetInfo(
        "synthetic", "Synthetic shapes (16x16, generated)",
        "Ten classes of coloured shapes and textures with random position, size, colours and noise; "
        "deterministic from the seed. 2,000 train / 500 test.",
        False, Augmentation(pad_crop=2, hflip=True), _load_synthetic,
    ),
    "cifar10": DatasetInfo(
        "cifar10", "CIFAR-10 (python pickles)",
        "The 'python version' of CIFAR-10: cifar-10-python.tar.gz, or its folder with data_batch_1..5 and "
        "test_batch. Read with a restricted unpickler.",
        True, Augmentation(pad_crop=4, hflip=True), _make_cifar_loader(10),
        "cifar-10-python.tar.gz, or a .zip / folder of cifar-10-batches-py",
    ),
    "cifar100": DatasetInfo(
        "cifar100", "CIFAR-100 (python pickles)",
        "The 'python version' of CIFAR-100 (fine labels): cifar-100-python.tar.gz, or its folder with train, test "
        "and meta. Read with a restricted unpickler.",
        True, Augmentation(pad_crop=4, hflip=True), _make_cifar_loader(100),
        "cifar-100-python.tar.gz, or a .zip / folder with train, test, meta",
    ),
    "mnist": DatasetInfo(
        "mnist", "MNIST (IDX files)",
        "The four IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte (each optionally .gz), in a folder, .zip or .tar.",
        True, Augmentation(pad_crop=2, hflip=False), _load_mnist,
        "a .zip / .tar / folder with the four IDX files (optionally .gz)",
    ),
    "folder": DatasetInfo(
        "folder", "Image folder (one sub-folder per class)",
        "A folder or .zip of images with one sub-folder per class (optionally under train/ and test/); images are "
        "resized to their most common size; grey if every image is grey.",
        True, Augmentation(pad_crop=2, hflip=True), _load_folder,
        "a .zip (or folder) of class sub-folders of images",
    ),
    "npz": DatasetInfo(
        "npz", "NumPy arrays (.npz)",
        "An .npz with x_train, y_train (and x_test, y_test, classes) or x, y; images as (N,H,W), (N,H,W,C) or "
        "(N,C,H,W), uint8 or floats in [0, 1]. Never unpickled.",
        True, Augmentation(pad_crop=2, hflip=False), _load_npz,
        "an .npz file",
    ),
}


def _finish(ds: ImageDataset, seed: int, max_train: int | None, max_test: int | None) -> ImageDataset:
    if max_train is None and max_test is None:
        return ds
    x_tr, y_tr = _subset(ds.x_train, ds.y_train, max_train, seed)
    x_te, y_te = _subset(ds.x_test, ds.y_test, max_test, seed + 1)
    return dataclasses.replace(ds, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)


def load_dataset(name: str, path: str | os.PathLike | None = None, seed: int = 0, *,
                 max_bytes: int | None = None, image_size=None, max_train: int | None = None,
                 max_test: int | None = None) -> ImageDataset:
    """Load a dataset from the registry :data:`DATASETS`; file loaders need ``path`` (a file, folder or archive).

    ``seed`` fixes the train/test split where the loader makes one (digits, folder, npz without a test split) and
    the generated data (synthetic). ``max_bytes`` caps the uncompressed size of user files (default
    :func:`default_max_bytes`). ``image_size`` sets the synthetic images' size or resizes a folder's images.
    ``max_train``/``max_test`` keep a seeded random subset (quick experiments on large sets).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset: unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    info = DATASETS[name]
    limit = int(max_bytes) if max_bytes is not None else default_max_bytes()
    if info.needs_path:
        if path is None or str(path) == "":
            raise ValueError(f"path: dataset {name!r} is read from a file; give path= ({info.file_hint})")
        arc = _open_path(path, limit)
        ds = info.loader(arc, seed=seed, image_size=image_size)
    else:
        ds = info.loader(seed=seed, image_size=image_size)
    return _finish(ds, seed, max_train, max_test)


def detect_format(filename: str, data: bytes | None = None, max_bytes: int | None = None) -> str:
    """Guess which file loader fits an upload from its name and contents (``cifar10``, ``mnist``, ``npz``…)."""
    limit = int(max_bytes) if max_bytes is not None else default_max_bytes()
    if data is None:
        arc = _open_path(filename, limit)
    else:
        arc = _open_bytes(data, filename, limit)
    return _detect(arc)


def _detect(arc: _Archive) -> str:
    names = arc.names()
    bases = {posixpath.basename(n) for n in names}
    if any(n.lower().endswith(".npz") for n in names):
        return "npz"
    if "data_batch_1" in bases or "test_batch" in bases:
        return "cifar10"
    if {"train", "test"} <= bases:
        return "cifar100"
    if any("idx3-ubyte" in b for b in bases):
        return "mnist"
    if any(n.lower().endswith(IMAGE_EXTENSIONS) for n in names):
        return "folder"
    raise ValueError(
        f"upload: cannot tell what {arc.label} holds; expected an .npz, CIFAR python batches, MNIST IDX files or a "
        f".zip of class sub-folders of images"
    )


def load_upload(data: bytes, filename: str, dataset: str = "auto", seed: int = 0, *,
                max_bytes: int | None = None, image_size=None) -> ImageDataset:
    """Load a dataset from an uploaded file's bytes (``st.file_uploader``): nothing is written to disk.

    ``dataset="auto"`` picks the loader from the file's name and contents; the returned dataset's ``name`` says
    which loader read it, so a caller can later reload the saved file with ``load_dataset(ds.name, path=...)``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError("data: expected the uploaded file's bytes")
    data = bytes(data)
    if not data:
        raise ValueError(f"upload: {filename!r} is empty")
    limit = int(max_bytes) if max_bytes is not None else default_max_bytes()
    arc = _open_bytes(data, filename, limit)
    name = _detect(arc) if dataset == "auto" else dataset
    if name not in DATASETS or not DATASETS[name].needs_path:
        raise ValueError(f"dataset: {name!r} is not a file format; choose one of "
                         f"{', '.join(k for k, v in DATASETS.items() if v.needs_path)} or 'auto'")
    return DATASETS[name].loader(arc, seed=seed, image_size=image_size)


# --------------------------------------------------------------------------------------------------------------
# Previews
# --------------------------------------------------------------------------------------------------------------


@dataclass
class SampleGrid:
    """Up to ``per_class`` images of each class: ``images`` (K, per_class, C, H, W), ``present`` marks real ones."""

    images: np.ndarray
    present: np.ndarray
    classes: list[str]
    indices: np.ndarray  # index into the split for each cell, -1 where absent

    def mosaic(self, pad: int = 1, scale: int = 1) -> np.ndarray:
        """One uint8 RGB image: a row per class, ``per_class`` columns, ``pad`` pixels of grey between cells."""
        k, m, c, h, w = self.images.shape
        hs, ws = h * scale, w * scale
        out = np.full((k * (hs + pad) + pad, m * (ws + pad) + pad, 3), 128, dtype=np.uint8)
        for i in range(k):
            for j in range(m):
                if not self.present[i, j]:
                    continue
                img = self.images[i, j]
                img = np.repeat(img, 3, axis=0) if c == 1 else img
                img = np.transpose(img, (1, 2, 0))
                if scale > 1:
                    img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
                y0, x0 = pad + i * (hs + pad), pad + j * (ws + pad)
                out[y0:y0 + hs, x0:x0 + ws] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
        return out


def sample_grid(ds: ImageDataset, per_class: int = 8, split: str = "train", seed: int = 0,
                max_classes: int | None = None) -> SampleGrid:
    """Pick up to ``per_class`` seeded random samples of each class (the page's preview grid)."""
    if not 1 <= per_class <= 64:
        raise ValueError(f"per_class: must be in [1, 64], got {per_class}")
    if split not in ("train", "test"):
        raise ValueError(f"split: must be 'train' or 'test', got {split!r}")
    x = ds.x_train if split == "train" else ds.x_test
    y = ds.y_train if split == "train" else ds.y_test
    k = ds.num_classes if max_classes is None else min(ds.num_classes, int(max_classes))
    rng = np.random.default_rng(seed)
    images = np.zeros((k, per_class) + x.shape[1:], dtype=np.float32)
    present = np.zeros((k, per_class), dtype=bool)
    indices = np.full((k, per_class), -1, dtype=np.int64)
    for cls in range(k):
        idx = np.flatnonzero(y == cls)
        if len(idx) > per_class:
            idx = np.sort(rng.choice(idx, per_class, replace=False))
        images[cls, : len(idx)] = x[idx]
        present[cls, : len(idx)] = True
        indices[cls, : len(idx)] = idx
    return SampleGrid(images, present, list(ds.classes[:k]), indices)


def list_datasets(needs_path: bool | None = None) -> list[str]:
    """Registry names, optionally only built-ins (``False``) or only file formats (``True``)."""
    return [k for k, v in DATASETS.items() if needs_path is None or v.needs_path == needs_path]
