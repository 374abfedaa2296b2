"""A grid's result folder, written and read here only: the job runner, the CLI and the explorer share one
contract, and no page names a file."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engine.device import resolve_device
from engine.errors import DamagedResult
from engine.io import (check_picture, damaged, jsonable, read_stored_json, read_stored_npy, read_stored_text,
                       write_bytes_atomic)
from engine.png import png_bytes, upscale
from engine.trainability.colours import measure_png, render_measure
from engine.trainability.dimension import DimensionEstimate, box_counting_dimension
from engine.trainability.grid import GridResult, refinement_stats, resolve_kernel, run_grid, warm_up
from engine.trainability.reuse import GridSource, known_pixels
from engine.trainability.spec import GridSpec

MEASURE, CONVERGED, SPEC, IMAGE, DIMENSION = "measure.npy", "converged.npy", "spec.json", "image.png", "dimension.json"
COMPUTED, STATS, LIVE = "computed.npy", "stats.json", "live.npz"
FILES = (MEASURE, CONVERGED, SPEC, IMAGE, DIMENSION, COMPUTED, STATS)
THUMBNAIL_SIDE = 128


def run_to_dir(spec: GridSpec, out_dir, progress=None, cancel=None, *, sources: GridSource | None = None,
               scheduler: str | None = None) -> None:
    """Compute ``spec`` and write :data:`FILES` into ``out_dir`` (the job runner's and the CLI's task).

    ``sources`` (see :mod:`.reuse`): stored grids whose pixels coincide with this one's are taken from there, not
    trained; the very same grid already stored is copied. ``scheduler``: a Dask scheduler address, "local", or
    None for ``$FRACTAL_LAB_DASK_SCHEDULER`` (unset: this machine). While it runs, ``live.npz`` holds the map so
    far after each refinement pass (:func:`read_live`); it is removed when the folder is complete."""
    if isinstance(spec, Mapping):
        spec = GridSpec.from_dict(dict(spec))
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from engine.trainability.cluster import scheduler_address

    address = scheduler_address(scheduler)
    dev = resolve_device(None)
    kernel = resolve_kernel("auto", dev)
    result = _stored_copy(spec, sources)
    if result is None:
        measure, mask = known_pixels(spec, sources)
        if address is None:
            warm_up(spec, dev, kernel)  # so the grid's own clock (result.elapsed_s) starts on a loaded kernel

        def on_partial(partial: np.ndarray, computed: np.ndarray, fraction: float) -> None:
            buf = io.BytesIO()
            np.savez(buf, measure=np.asarray(partial, dtype=np.float64), computed=np.asarray(computed, dtype=bool))
            write_bytes_atomic(out / LIVE, buf.getvalue(), fsync=False)

        result = run_grid(spec, progress=(lambda f: progress(0.98 * f)) if progress else None, cancel=cancel,
                          device=dev, kernel=kernel, known=(measure, mask) if mask.any() else None,
                          on_partial=on_partial, scheduler=address)
    np.save(out / MEASURE, result.measure)
    np.save(out / CONVERGED, result.converged)
    np.save(out / COMPUTED, np.asarray(result.computed, dtype=bool))
    (out / SPEC).write_text(spec.to_json(indent=2))
    (out / IMAGE).write_bytes(measure_png(result.measure))
    dim = box_counting_dimension(result.measure)
    (out / DIMENSION).write_text(json.dumps(jsonable(dim.to_dict()), indent=2, sort_keys=True))
    stats = dict(result.refinement)
    elapsed = time.perf_counter() - t0
    # overhead_s: the job's time outside training (store lookup, kernel load, the files written), about the same
    # for any size; a measured rate leaves it out (runs.rates)
    stats.update(network_steps=int(result.steps_run), network_steps_full=int(stats["trained"]) * spec.steps,
                 elapsed_s=elapsed, overhead_s=max(0.0, elapsed - result.elapsed_s), dtype=spec.dtype,
                 device=dev.type, kernel=kernel, scheduler=address)
    (out / STATS).write_text(json.dumps(jsonable(stats), indent=2, sort_keys=True))
    (out / LIVE).unlink(missing_ok=True)
    if progress is not None:
        progress(1.0)


def _stored_copy(spec: GridSpec, sources: GridSource | None) -> GridResult | None:
    """The same exact grid from ``sources``, as a result that trained nothing (None if not stored, or if the
    stored array does not fit: then it is computed)."""
    if sources is None or spec.refine != "exact":
        return None
    measure = sources.exact(spec)
    if measure is None:
        return None
    measure = np.asarray(measure)
    if measure.shape != spec.shape or measure.dtype.kind != "f" or not np.all(np.isfinite(measure)):
        return None
    measure = measure.astype(np.float64)
    n = spec.n_x * spec.n_y
    return GridResult(spec=spec, measure=measure, converged=measure < 0, x_values=spec.x_values,
                      y_values=spec.y_values, elapsed_s=0.0, reused=n,
                      refinement=refinement_stats("exact", n, n, n, 0, passes=0))


def read_live(folder) -> tuple[np.ndarray, np.ndarray] | None:
    """``(measure, computed)`` of a running grid's latest snapshot in ``folder``; None when there is none yet or
    it cannot be read (never raises: a page polls this while the job replaces the file)."""
    try:
        with np.load(Path(folder) / LIVE, allow_pickle=False) as z:
            measure, computed = z["measure"], z["computed"]
    except Exception:  # noqa: BLE001 - absent, half-gone or damaged: no picture this time
        return None
    if (measure.ndim != 2 or measure.dtype.kind != "f" or 0 in measure.shape or computed.shape != measure.shape
            or computed.dtype != np.bool_):
        return None
    return measure, computed


@dataclass
class GridFiles:
    """What a finished grid folder holds, as values: the arrays, the spec, the PNG and the dimension."""

    measure: np.ndarray
    converged: np.ndarray
    spec: GridSpec
    spec_json: str
    png: bytes
    dimension: dict[str, Any] | None
    computed: np.ndarray | None = None  # bool (n_y, n_x): False = inferred by refinement; all True if older
    stats: dict[str, Any] | None = None  # stats.json (None for folders written before it)

    def __post_init__(self) -> None:
        if self.computed is None:
            self.computed = np.ones(self.measure.shape, dtype=bool)

    def estimate(self) -> DimensionEstimate:
        """The stored box-counting estimate (measured now for folders written before it was stored)."""
        if self.dimension:
            return DimensionEstimate.from_dict(self.dimension)
        return box_counting_dimension(self.measure)

    def measure_npy(self) -> bytes:
        """The measure as a ``.npy`` file, for a download."""
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
    computed = None
    if (d / COMPUTED).exists():  # older folders lack it: every pixel was computed then
        computed = read_stored_npy(d / COMPUTED)
        if computed.shape != measure.shape or computed.dtype != np.bool_:
            raise damaged(d / COMPUTED, f"holds a {computed.dtype} array of shape {computed.shape}, "
                                        f"expected bool {measure.shape}")
    stats = read_stored_json(d / STATS) if (d / STATS).exists() else None
    return GridFiles(measure=measure, converged=converged, spec=spec, spec_json=spec_json,
                     png=check_picture(d / IMAGE), dimension=dimension, computed=computed, stats=stats)


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
