"""Loaders of the file formats users bring: CIFAR python batches, MNIST IDX, a folder of class folders, ``.npz``.

Each reads from an :mod:`~engine.datasets.archives` view (never the disk layout directly), checks what it finds
and names the problem (``cifar:``, ``mnist:``, ``folder:``, ``npz:``) when the file is not what it claims.
"""

from __future__ import annotations

import io
import math
import struct
from collections import Counter
from typing import Callable

import numpy as np

from engine.datasets.archives import _Archive, _find_member, _gunzip, _mb, _ZipArchive
from engine.datasets.dataset import MAX_CLASSES, Augmentation, ImageDataset, _labels, _stratified_split, _to_nchw_unit
from engine.datasets.images import IMAGE_EXTENSIONS, MAX_TOTAL_PIXELS, decode_image, image_header
from engine.datasets.pickles import _names, _plain_keys, safe_unpickle


def _cifar_batch(arc: _Archive, member: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    obj = _plain_keys(safe_unpickle(arc.read(member), repr(member)))
    if not isinstance(obj, dict) or "data" not in obj or label_key not in obj:
        raise ValueError(f"cifar: {member!r} is not a CIFAR batch (expected a dict with 'data' and {label_key!r})")
    data = obj["data"]
    if not isinstance(data, np.ndarray):  # never np.asarray a pickled list: shared references multiply out
        raise ValueError(f"cifar: {member!r} data must be a numpy array of (N, 3072) bytes, got {type(data).__name__}")
    if data.dtype == object:
        raise ValueError(f"cifar: {member!r} holds object arrays, not pixel data")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"cifar: {member!r} data must be (N, 3072) bytes (3x32x32 images), got shape {data.shape}")
    labels = _labels(obj[label_key], f"cifar: {member!r} {label_key}")
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
            classes = _names(m[names_key]) or classes
    for what, y in (("train", y_tr), ("test", y_te)):
        if y.size and y.max() >= num_classes:
            raise ValueError(f"cifar: {what} labels go up to {y.max()}, but CIFAR-{num_classes} has {num_classes} classes")
    return x_tr, y_tr, x_te, y_te, classes


def _make_cifar_loader(num_classes: int) -> Callable[..., ImageDataset]:
    key = f"cifar{num_classes}"

    def load(arc: _Archive, seed: int, augmentation: Augmentation = Augmentation(), **_) -> ImageDataset:
        x_tr, y_tr, x_te, y_te, classes = _load_cifar(arc, num_classes)
        return ImageDataset(key, x_tr, y_tr, x_te, y_te, classes, augmentation, source=arc.label)

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
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
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


def _load_mnist(arc: _Archive, seed: int, augmentation: Augmentation = Augmentation(), **_) -> ImageDataset:
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
    return ImageDataset("mnist", *out["train"], *out["test"], classes, augmentation, source=arc.label)


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
    # Every header first: a few kilobytes of PNG can declare 4096x4096 pixels, so nothing is decoded until the
    # sizes of all the images are known to fit.
    sizes, total = [], 0
    for _, _, m in entries:
        sizes.append(image_header(arc.read(m), m))
        total += sizes[-1][0] * sizes[-1][1]
        if total > MAX_TOTAL_PIXELS:
            raise ValueError(f"folder: {arc.label} declares more than {MAX_TOTAL_PIXELS:,} pixels in all (reached at "
                             f"{m!r}), over the limit; use fewer or smaller images")
    if image_size is not None:
        size = (int(image_size), int(image_size)) if np.isscalar(image_size) else tuple(int(s) for s in image_size)
    else:
        size = Counter(sizes).most_common(1)[0][0]
    h, w = size
    if not (4 <= h <= 512 and 4 <= w <= 512):
        raise ValueError(f"image_size: images must be 4 to 512 pixels a side, got {h}x{w}")
    needed = len(entries) * 3 * h * w * 4
    if needed > arc.max_bytes * 4:
        raise ValueError(f"folder: {len(entries)} images of {h}x{w} need {_mb(needed)} in memory, over the limit")
    from PIL import Image

    arr = np.empty((len(entries), h, w, 3), dtype=np.uint8)
    for i, (_, _, m) in enumerate(entries):  # one decoded image at a time
        im = decode_image(arc.read(m), m)
        if (im.height, im.width) != sizes[i]:
            raise ValueError(f"folder: image {m!r} changed while it was read")
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
    _check_npy_headers(inner, members[0])
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
        names = np.asarray(arrays["classes"])
        if names.ndim != 1 or names.size > MAX_CLASSES:
            raise ValueError(f"npz: classes must be a 1-D array of at most {MAX_CLASSES} names, got shape {names.shape}")
        classes = [str(c) for c in names.tolist()]
        if len(classes) < k:
            raise ValueError(f"npz: classes names {len(classes)} classes but labels go up to {k - 1}")
    else:
        classes = [str(i) for i in range(k)]
    h, w = x_tr.shape[2:]
    aug = Augmentation(pad_crop=max(1, min(h, w) // 8), hflip=False)
    return ImageDataset("npz", x_tr, y_tr, x_te, y_te, classes, aug, source=arc.label)


def _check_npy_headers(inner: _ZipArchive, what: str) -> None:
    """Each .npy member's declared shape must fit the bytes it holds: numpy allocates the declared shape first."""
    fmt = np.lib.format
    for name, info in inner._infos.items():
        if not name.endswith(".npy"):
            continue
        try:
            with inner.zf.open(info) as fh:
                version = fmt.read_magic(fh)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f".npy format version {version[0]}.{version[1]} is not accepted (1.0 or 2.0)")
                header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = header(fh)
                held = info.file_size - fh.tell()
        except Exception as exc:  # a broken header: np.load names it below
            if isinstance(exc, ValueError) and "pickle" in str(exc).lower():
                continue
            raise ValueError(f"npz: {what!r} member {name!r} cannot be read ({type(exc).__name__}: {exc})") from None
        if dtype.hasobject:
            continue  # np.load refuses object arrays (allow_pickle=False) before allocating
        count = int(np.prod(shape, dtype=object))
        if count * max(dtype.itemsize, 1) > held:
            raise ValueError(f"npz: {what!r} member {name!r} declares shape {shape} of {dtype} "
                             f"({count * dtype.itemsize:,} bytes) but holds {held:,} bytes")
