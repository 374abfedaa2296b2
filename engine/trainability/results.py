"""A grid's result folder, written and read here only: the job runner, the CLI and the explorer share one
contract, and no page names a file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engine.io import jsonable
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


def load(result_dir) -> GridFiles:
    """Read a grid result folder (folders never change once written, so callers may cache this)."""
    d = Path(result_dir)
    dim_path = d / DIMENSION
    spec_json = (d / SPEC).read_text()
    return GridFiles(measure=np.load(d / MEASURE), converged=np.load(d / CONVERGED),
                     spec=GridSpec.from_json(spec_json), spec_json=spec_json, png=(d / IMAGE).read_bytes(),
                     dimension=json.loads(dim_path.read_text()) if dim_path.exists() else None)


def thumbnail(result_dir) -> bytes | None:
    """The map as a PNG of about :data:`THUMBNAIL_SIDE` pixels a side (None if the folder has no measure)."""
    path = Path(result_dir) / MEASURE
    if not path.exists():
        return None
    rgb = render_measure(np.load(path))
    side = max(rgb.shape[:2])
    if side > THUMBNAIL_SIDE:  # every k-th pixel: each pixel is one network, so no blending across the boundary
        k = -(-side // THUMBNAIL_SIDE)
        return png_bytes(np.ascontiguousarray(rgb[::k, ::k]))
    return png_bytes(upscale(rgb, max(1, THUMBNAIL_SIDE // side)))
