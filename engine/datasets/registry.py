"""Which datasets exist, what each needs, and the two ways in: by name (+ a path) or from an upload's bytes.

:data:`DATASETS` is the one list the page, the CLI and the trainer read; each entry carries its facts (title,
description, whether it needs a file, its augmentation) beside its loader.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from dataclasses import dataclass, field
from typing import Callable

from engine.datasets.archives import _Archive, _open_bytes, _open_path, default_max_bytes
from engine.datasets.builtin import _load_digits, _load_synthetic
from engine.datasets.dataset import Augmentation, ImageDataset, _subset
from engine.datasets.formats import _load_folder, _load_mnist, _load_npz, _make_cifar_loader
from engine.datasets.images import IMAGE_EXTENSIONS


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
        ds = info.loader(arc, seed=seed, image_size=image_size, augmentation=info.augmentation)
    else:
        ds = info.loader(seed=seed, image_size=image_size, augmentation=info.augmentation)
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
    return DATASETS[name].loader(arc, seed=seed, image_size=image_size, augmentation=DATASETS[name].augmentation)


def list_datasets(needs_path: bool | None = None) -> list[str]:
    """Registry names, optionally only built-ins (``False``) or only file formats (``True``)."""
    return [k for k, v in DATASETS.items() if needs_path is None or v.needs_path == needs_path]
