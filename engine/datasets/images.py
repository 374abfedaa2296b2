"""The one image decoder: a user's picture (a file, an upload, an array) becomes a model input the same way.

Decoding checks the pixel count from the header before Pillow allocates anything (decompression bombs: a PNG of a
few kilobytes can declare 4096x4096 pixels, 64 MB decoded) and turns every failure into ``ValueError("image: …")``;
:func:`image_header` reads only that size, so a loader can check a whole folder before decoding any of it. The
folder loader, the page's "predict on your image" and the CLI's ``predict`` all come through here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: A single decoded image may not exceed this many pixels (guards against decompression bombs in PNG/JPEG).
MAX_IMAGE_PIXELS = 4096 * 4096
#: All the images of one folder dataset together may not exceed this many pixels (16 images of 4096x4096, or
#: 260,000 of 32x32), checked from their headers before any is decoded.
MAX_TOTAL_PIXELS = 16 * MAX_IMAGE_PIXELS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
#: The Pillow readers of those extensions. Only these are tried, whatever a file's content claims: some others
#: (ICO, ICNS…) load at a size other than their header's.
_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM")


def _open(data: bytes, name: str):
    """A lazily opened Pillow image (header read, pixels not decoded) of at most :data:`MAX_IMAGE_PIXELS`."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data), formats=_FORMATS)
        width, height = img.size
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image: {name!r} is a decompression bomb ({exc}); images may have at most "
                         f"{MAX_IMAGE_PIXELS:,} pixels") from None
    except Exception as exc:  # Pillow raises many kinds on garbage: UnidentifiedImageError, SyntaxError, struct.error…
        raise ValueError(f"image: {name!r} is not a readable image ({type(exc).__name__})") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"image: {name!r} is {width}x{height}, over the limit of {MAX_IMAGE_PIXELS} pixels")
    return img


def image_header(data: bytes, name: str) -> tuple[int, int]:
    """The (height, width) an image declares, read from its header without decoding a pixel; checked as in
    :func:`decode_image`."""
    img = _open(data, name)
    return img.height, img.width


def decode_image(data: bytes, name: str):
    """A Pillow image of ``data`` (loaded, at most :data:`MAX_IMAGE_PIXELS`); ``name`` is only for messages."""
    from PIL import Image

    img = _open(data, name)
    declared = img.size
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image: {name!r} is a decompression bomb ({exc})") from None
    except Exception as exc:
        raise ValueError(f"image: {name!r} is not a readable image ({type(exc).__name__})") from None
    if img.size != declared:
        raise ValueError(f"image: {name!r} decodes to {img.size[0]}x{img.size[1]} pixels, not the "
                         f"{declared[0]}x{declared[1]} its header declares")
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
    return load_image(decode_image(data, name), in_channels, (h, w))[0]


def load_image(
    source: Any, in_channels: int, image_size: Sequence[int], invert: bool = False
) -> np.ndarray:
    """One image as a (1, C, H, W) float32 batch in [0, 1] at the model's size and channels.

    ``source``: a file path (.npy read without pickle, or any image Pillow opens), raw file bytes, a PIL image, or
    an array ((H, W), (C, H, W) or (H, W, C); uint8 or floats in [0, 1]). ``invert`` flips dark-on-light
    drawings to light-on-dark, the way digits and MNIST store ink.
    """
    from PIL import Image

    h, w = int(image_size[0]), int(image_size[1])
    if isinstance(source, (str, Path)) and str(source).endswith(".npy"):
        source = np.load(source, allow_pickle=False)
    if isinstance(source, (str, Path)):
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ValueError(f"image: {source} cannot be read ({exc})") from None
        source = decode_image(data, Path(source).name)
    elif isinstance(source, (bytes, bytearray)):
        source = decode_image(bytes(source), "image")
    if isinstance(source, Image.Image):
        im = source.convert("L" if in_channels == 1 else "RGB").resize((w, h), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    else:
        arr = np.asarray(source)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        arr = arr.astype(np.float32)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 2:
            arr = arr[None]
        elif arr.ndim == 3 and arr.shape[0] not in (1, 3) and arr.shape[-1] in (1, 3):
            arr = arr.transpose(2, 0, 1)
        if arr.ndim != 3:
            raise ValueError(f"image: expected one image (H, W), (C, H, W) or (H, W, C), got shape {arr.shape}")
        t = torch.from_numpy(np.ascontiguousarray(arr))[None]
        if t.shape[1] != in_channels:
            t = t.mean(1, keepdim=True) if in_channels == 1 else t.expand(-1, in_channels, -1, -1)
        if tuple(t.shape[-2:]) != (h, w):
            t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
        arr = t[0].numpy()
    arr = np.clip(arr, 0.0, 1.0)
    if invert:
        arr = 1.0 - arr
    return np.ascontiguousarray(arr[None], dtype=np.float32)
