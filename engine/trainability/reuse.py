"""Pixels a grid need not train: those that coincide, bit for bit, with pixels of a stored grid of the same
experiment (a 2x zoom snapped to the lattice shares a quarter of its pixels with the view it came from, see
:func:`engine.trainability.views.snapped_zoom`).

A pixel's network depends on its two coordinates and on everything else in the spec except the view, the
resolution and how the grid was refined; so equal coordinates (float equality, not closeness) in the same
experiment mean the same network and the same measure. The engine never reads the store: the runs layer passes
in a :class:`GridSource` (``runs.stored.StoredGrids``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np

from engine.trainability.spec import GridSpec

#: Fields that say where and how finely a grid looks, not which networks it trains.
VIEW_FIELDS = ("x_range", "y_range", "resolution", "lattice", "refine")


class GridSource(Protocol):
    """Stored grids to take pixels from. ``similar(spec)``: ``(stored spec, measure, computed mask)`` of grids of
    the same experiment (damaged ones skipped); ``exact(spec)``: the stored measure of ``spec`` itself, or None."""

    def similar(self, spec: GridSpec) -> Iterable[tuple[GridSpec, np.ndarray, np.ndarray]]: ...

    def exact(self, spec: GridSpec) -> np.ndarray | None: ...


def _experiment(spec: GridSpec) -> dict:
    d = spec.to_dict()
    for name in VIEW_FIELDS:
        d.pop(name, None)
    return d


def same_experiment(a: GridSpec, b: GridSpec) -> bool:
    """Whether ``a`` and ``b`` train the same network at equal coordinates: equal in every field but
    :data:`VIEW_FIELDS`."""
    return _experiment(a) == _experiment(b)


def overlaps(spec: GridSpec, stored: GridSpec) -> bool:
    """Whether ``stored`` could hold a pixel of ``spec``: the same experiment and overlapping views. Cheap: a
    source may ask it before reading a stored grid's arrays."""
    if not same_experiment(spec, stored):
        return False
    return (stored.x_range[0] <= spec.x_range[1] and spec.x_range[0] <= stored.x_range[1]
            and stored.y_range[0] <= spec.y_range[1] and spec.y_range[0] <= stored.y_range[1])


def _matches(values: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``values``: whether a coordinate of ``stored`` (ascending) is float-equal to it, and its index."""
    at = np.searchsorted(stored, values)
    inside = at < stored.size
    hit = np.zeros(values.shape, dtype=bool)
    hit[inside] = stored[at[inside]] == values[inside]
    return hit, np.where(hit, at, 0)


def coinciding_pixels(spec: GridSpec, stored_spec: GridSpec, stored_measure: np.ndarray,
                      stored_computed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(measure, mask)`` of shape ``spec.shape``: the pixels of ``spec`` whose x AND y coordinates are
    float-equal to those of a pixel ``stored_spec`` computed exactly (``stored_computed``; None = every pixel),
    with that pixel's measure; NaN and False elsewhere (everywhere for a different experiment)."""
    measure = np.full(spec.shape, np.nan)
    mask = np.zeros(spec.shape, dtype=bool)
    stored_measure = np.asarray(stored_measure)
    if stored_measure.shape != stored_spec.shape or not same_experiment(spec, stored_spec):
        return measure, mask
    if stored_computed is None:
        stored_computed = np.ones(stored_spec.shape, dtype=bool)
    cols_hit, cols = _matches(spec.x_values, stored_spec.x_values)
    rows_hit, rows = _matches(spec.y_values, stored_spec.y_values)
    if not (cols_hit.any() and rows_hit.any()):
        return measure, mask
    r, c = np.nonzero(rows_hit)[0], np.nonzero(cols_hit)[0]
    sub = np.ix_(rows[r], cols[c])
    ok = np.asarray(stored_computed, dtype=bool)[sub] & np.isfinite(stored_measure[sub])
    dest = np.ix_(r, c)
    mask[dest] = ok
    measure[dest] = np.where(ok, stored_measure[sub], np.nan)
    return measure, mask


def known_pixels(spec: GridSpec, source: GridSource | None) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel of ``spec`` that some grid of ``source.similar(spec)`` computed exactly (the first grid to
    hold a pixel gives it; they agree bit for bit anyway), as ``(measure, mask)``."""
    measure = np.full(spec.shape, np.nan)
    mask = np.zeros(spec.shape, dtype=bool)
    if source is None:
        return measure, mask
    for stored_spec, stored_measure, stored_computed in source.similar(spec):
        m, k = coinciding_pixels(spec, stored_spec, stored_measure, stored_computed)
        new = k & ~mask
        measure[new] = m[new]
        mask |= new
        if mask.all():
            break
    return measure, mask
