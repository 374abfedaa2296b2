"""A grid's result folder, written and read here only: the job runner, the CLI and the explorer share one
contract, and no page names a file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engine.errors import DamagedResult
from engine.io import check_picture, damaged, jsonable, read_stored_json, read_stored_npy, read_stored_text
from engine.png import png_bytes, upscale
from engine.trainability.colours import measure_png, render_measure
from engine.trainability.dimension import DimensionEstimate, box_counting_dimension
from engine.trainability.grid import run_grid
from engine.trainability.spec import GridSpec

MEASURE, CONVERGED, SPEC, IMAGE, DIMENSION = "measure.npy", "converged.npy", "spec.json", "image.png", "dimension.json"
FILES = (MEASURE, CONVERGED, SPEC, IMAGE, DIMENSION)
THUMBNAIL_SIDE = 128


def run_to_dir(spec: GridSpec, out_dir, progress=None, cancel=None) -> None:
    """Compute ``spec`` and write :data:`FILES` into ``out_dir`` (the job runner's and the CLI's task)."""
    if isinstance(spec, Mapping):
        spec = GridSpec.from_dict(dict(spec))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = run_grid(spec, progress=(lambda f: progress(0.98 * f)) if progress else None, cancel=cancel)
    np.save(out / MEASURE, result.measure)
    np.save(out / CONVERGED, result.converged)
    (out / SPEC).write_text(spec.to_json(indent=2))
    (out / IMAGE).write_bytes(measure_png(result.measure))
    dim = box_counting_dimension(result.measure)
    (out / DIMENSION).write_text(json.dumps(jsonable(dim.to_dict()), indent=2, sort_keys=True))
    if progress is not None:
        progress(1.0)


@dataclass
class GridFiles:
    """What a finished grid folder holds, as values: the arrays, the spec, the PNG and the dimension."""

    measure: np.ndarray
    converged: np.ndarray
    spec: GridSpec
    spec_json: str
    png: bytes
    dimension: dict[str, Any] | None

    def estimate(self) -> DimensionEstimate:
        """The stored box-counting estimate (measured now for folders written before it was stored)."""
        if self.dimension:
            return DimensionEstimate.from_dict(self.dimension)
        return box_counting_dimension(self.measure)

    def measure_npy(self) -> bytes:
        """The measure as a ``.npy`` file, for a download."""
        import io

        buf = io.BytesIO()
        np.save(buf, self.measure)
        return buf.getvalue()


def _read_measure(path: Path) -> np.ndarray:
    measure = read_stored_npy(path)
    if measure.ndim != 2 or measure.dtype.kind != "f" or 0 in measure.shape:
        raise damaged(path, f"holds a {measure.dtype} array of shape {measure.shape}, not a 2-D float map")
    return measure


def load(result_dir) -> GridFiles:
    """Read a grid result folder (folders never change once written, so callers may cache this).

    Every file is checked as it is read: a missing, truncated or unparsable one, or arrays that disagree with
    each other or with the spec, raise :class:`~engine.errors.DamagedResult` naming the file."""
    d = Path(result_dir)
    spec_json = read_stored_text(d / SPEC)
    try:
        spec = GridSpec.from_json(spec_json)
    except (ValueError, TypeError, KeyError) as exc:
        raise damaged(d / SPEC, f"not a grid spec ({str(exc)[:160]})") from None
    measure = _read_measure(d / MEASURE)
    if measure.shape != spec.shape:
        raise damaged(d / MEASURE, f"has shape {measure.shape}, the spec says {spec.shape}")
    converged = read_stored_npy(d / CONVERGED)
    if converged.shape != measure.shape or converged.dtype != np.bool_:
        raise damaged(d / CONVERGED, f"holds a {converged.dtype} array of shape {converged.shape}, "
                                     f"expected bool {measure.shape}")
    dimension = read_stored_json(d / DIMENSION) if (d / DIMENSION).exists() else None  # older folders lack it
    if dimension is not None:
        try:
            DimensionEstimate.from_dict(dimension)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise damaged(d / DIMENSION, f"not a dimension estimate ({type(exc).__name__}: {exc})") from None
    return GridFiles(measure=measure, converged=converged, spec=spec, spec_json=spec_json,
                     png=check_picture(d / IMAGE), dimension=dimension)


def thumbnail(result_dir) -> bytes | None:
    """The map as a PNG of about :data:`THUMBNAIL_SIDE` pixels a side (None if the folder has no measure, or a
    damaged one: a list of runs shows every other row)."""
    path = Path(result_dir) / MEASURE
    if not path.exists():
        return None
    try:
        measure = _read_measure(path)
    except DamagedResult:
        return None
    rgb = render_measure(measure)
    side = max(rgb.shape[:2])
    if side > THUMBNAIL_SIDE:  # every k-th pixel: each pixel is one network, so no blending across the boundary
        k = -(-side // THUMBNAIL_SIDE)
        return png_bytes(np.ascontiguousarray(rgb[::k, ::k]))
    return png_bytes(upscale(rgb, max(1, THUMBNAIL_SIDE // side)))
