"""The checked train/test split every loader returns, and the augmentation that goes with it.

A bad file must fail where it is read, with a message naming what was wrong, not deep inside training: so
:class:`ImageDataset` checks shapes, labels and pixel ranges on construction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.specs import SpecMixin, short_repr

#: A dataset may have at most this many classes: a label is an index into the class list, so one label of 2**40
#: would otherwise build a list of 2**40 names.
MAX_CLASSES = 1000


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
            raise ValueError(f"pad_crop: must be in [0, 16] pixels, got {short_repr(self.pad_crop)}")
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
        if k > MAX_CLASSES:
            raise ValueError(f"classes: at most {MAX_CLASSES} classes are allowed, got {k}")
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


def _labels(y, what: str) -> np.ndarray:
    """Class indices as int64, checked: integers in [0, MAX_CLASSES). ``y``: an array or a flat list of integers."""
    if isinstance(y, (list, tuple)):
        # A pickled list may hold nested lists that share references: np.asarray would multiply them out.
        if not all(isinstance(v, (int, np.integer)) for v in y):
            raise ValueError(f"{what}: labels must be a flat list of integer class indices")
        bad = next((int(v) for v in y if not 0 <= v < MAX_CLASSES), None)
        if bad is not None:
            raise ValueError(f"{what}: labels must be class indices in [0, {MAX_CLASSES - 1}] "
                             f"(at most {MAX_CLASSES} classes), got {bad}")
        y = np.array(y, dtype=np.int64)
    if not isinstance(y, np.ndarray):
        raise ValueError(f"{what}: labels must be an array or a list of integer class indices, got {type(y).__name__}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{what}: labels must be a 1-D array of class indices, got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        if np.issubdtype(y.dtype, np.floating) and y.size and np.all(y == np.round(y)) and np.isfinite(y).all():
            if y.min() < 0 or y.max() >= MAX_CLASSES:
                raise ValueError(f"{what}: labels must be class indices in [0, {MAX_CLASSES - 1}] "
                                 f"(at most {MAX_CLASSES} classes), got [{y.min():g}, {y.max():g}]")
            y = y.astype(np.int64)
        else:
            raise ValueError(f"{what}: labels must be integers, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise ValueError(f"{what}: labels must be class indices in [0, {MAX_CLASSES - 1}] "
                         f"(at most {MAX_CLASSES} classes), got [{y.min()}, {y.max()}]")
    return y.astype(np.int64)
