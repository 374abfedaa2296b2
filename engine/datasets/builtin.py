"""Datasets that need no file: scikit-learn's 8x8 digits (shipped inside the package) and seeded synthetic shapes.

The lab must run offline and reproducibly, so these two are always there; the registry passes each its
augmentation (one declaration, in :data:`engine.datasets.registry.DATASETS`).
"""

from __future__ import annotations

import numpy as np

from engine.datasets.dataset import Augmentation, ImageDataset, _stratified_split

def _load_digits(seed: int, augmentation: Augmentation = Augmentation(), **_) -> ImageDataset:
    """scikit-learn's 1,797 real 8x8 handwritten digits (shipped in the package), seeded stratified 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    tr, te = _stratified_split(y, 0.2, seed)
    return ImageDataset(
        "digits", x[tr], y[tr], x[te], y[te], [str(i) for i in range(10)], augmentation,
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
                   noise: float = 0.12, augmentation: Augmentation = Augmentation()) -> ImageDataset:
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
        augmentation, source=f"generated (seed {seed}, {image_size}x{image_size})",
    )


def _load_synthetic(seed: int, image_size=None, augmentation: Augmentation = Augmentation(), **_) -> ImageDataset:
    return make_synthetic(image_size=int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size or 16),
                          seed=seed, augmentation=augmentation)
