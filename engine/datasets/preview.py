"""A look at a dataset before training on it: a few seeded samples of each class, as one picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.datasets.dataset import ImageDataset
from engine.png import font


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

    def labelled(self, target: int = 40, strip: int = 110) -> np.ndarray:
        """The mosaic (cells enlarged to about ``target`` pixels) with each row's class name in a strip at its left."""
        from PIL import Image, ImageDraw

        h = self.images.shape[-2]
        scale = max(1, target // h)
        mosaic = self.mosaic(pad=2, scale=scale)
        img = Image.new("RGB", (mosaic.shape[1] + strip, mosaic.shape[0]), (255, 255, 255))
        img.paste(Image.fromarray(mosaic), (strip, 0))
        draw = ImageDraw.Draw(img)
        label_font = font(12)
        cell = h * scale + 2
        for i, name in enumerate(self.classes):
            draw.text((strip - 6, 2 + i * cell + cell / 2), str(name)[:16], fill="black", font=label_font,
                      anchor="rm")
        return np.asarray(img)


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
