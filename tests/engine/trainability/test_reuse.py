"""Pixel reuse across zooms: a snapped 2x zoom takes a quarter of its pixels from the view it came from, and they
are the very bits it would have computed (fused kernel; asserted bit for bit)."""

from __future__ import annotations

import dataclasses

import numpy as np

from engine.trainability import reuse, views
from engine.trainability.grid import run_grid, run_pixels
from engine.trainability.spec import GridSpec


def root_spec(n: int = 16, **over) -> GridSpec:
    kw = dict(width=5, steps=40, resolution=(n, n), x_range=(-1.0, 2.5), y_range=(-1.0, 2.5), seed=3)
    kw.update(over)
    return GridSpec(**kw)


def zoomed(parent: GridSpec, root: GridSpec, x: float, y: float, factor: int = 2) -> GridSpec:
    view = views.snapped_zoom(views.view_of(root), root.resolution, views.view_of(parent), x, y, factor)
    spec, _ = views.view_spec(root, view)
    assert spec.lattice is not None
    return spec


class ListSource:
    """A GridSource over grids held in a list (what ``runs.stored.StoredGrids`` is over the store)."""

    def __init__(self, grids):
        self.grids = list(grids)
        self.asked = []

    def similar(self, spec):
        self.asked.append(spec)
        return [(s, m, c) for s, m, c in self.grids if reuse.same_experiment(spec, s)]

    def exact(self, spec):
        for s, m, _ in self.grids:
            if s.content_hash() == spec.content_hash():
                return m
        return None


def test_same_experiment_ignores_only_where_and_how_finely_a_grid_looks():
    a = root_spec()
    for other in (dataclasses.replace(a, x_range=(0.0, 1.0)), dataclasses.replace(a, resolution=(8, 4)),
                  dataclasses.replace(a, refine="boundary"), zoomed(a, a, 0.5, 0.5)):
        assert reuse.same_experiment(a, other) and reuse.same_experiment(other, a)
    for other in (dataclasses.replace(a, seed=4), dataclasses.replace(a, dtype="float32"),
                  dataclasses.replace(a, width=6), dataclasses.replace(a, steps=41),
                  dataclasses.replace(a, activation="relu"), dataclasses.replace(a, batch_size=5)):
        assert not reuse.same_experiment(a, other)
    assert reuse.overlaps(a, zoomed(a, a, 0.5, 0.5))
    assert not reuse.overlaps(a, dataclasses.replace(a, x_range=(3.0, 4.0)))


def test_a_snapped_2x_zoom_finds_a_quarter_of_its_pixels_and_they_are_its_own_bits():
    root = root_spec()
    parent = run_grid(root, kernel="fused")
    child = zoomed(root, root, 0.6, 1.1)
    measure, mask = reuse.coinciding_pixels(child, root, parent.measure, parent.computed)
    assert mask.sum() == child.n_x * child.n_y // 4
    assert np.isnan(measure[~mask]).all()
    flat = np.flatnonzero(mask)
    fresh, _ = run_pixels(child, flat, kernel="fused")
    np.testing.assert_array_equal(measure.ravel()[flat], fresh)  # reused == recomputed, bit for bit
    # one level further: a quarter again; 4x from the root's child: a sixteenth
    grand = zoomed(child, root, 0.7, 1.0)
    child_measure = run_grid(child, kernel="fused").measure
    assert reuse.coinciding_pixels(grand, child, child_measure)[1].sum() == 64
    deeper = zoomed(child, root, 0.7, 1.0, factor=4)
    assert reuse.coinciding_pixels(deeper, child, child_measure)[1].sum() == 16


def test_only_exactly_computed_pixels_of_the_same_experiment_are_taken():
    root = root_spec()
    parent = run_grid(root, kernel="fused")
    child = zoomed(root, root, 0.6, 1.1)
    computed = np.ones(root.shape, dtype=bool)
    computed[:, ::2] = False  # half the parent was inferred
    _, full = reuse.coinciding_pixels(child, root, parent.measure)
    _, half = reuse.coinciding_pixels(child, root, parent.measure, computed)
    assert 0 < half.sum() < full.sum()
    other = dataclasses.replace(root, seed=9)
    assert not reuse.coinciding_pixels(child, other, parent.measure)[1].any()
    assert not reuse.coinciding_pixels(child, root, parent.measure[:4])[1].any()  # a wrong shape: nothing
    # an unsnapped zoom shares no coordinates at all
    plain, _ = views.view_spec(root, views.zoom_view(views.view_of(root), 0.6, 1.1, 2))
    assert not reuse.coinciding_pixels(plain, root, parent.measure)[1].any()


def test_known_pixels_merges_sources_and_none_is_nothing():
    root = root_spec()
    parent = run_grid(root, kernel="fused")
    child = zoomed(root, root, 0.6, 1.1)
    grand = zoomed(child, root, 0.7, 1.0)
    child_res = run_grid(child, kernel="fused")
    source = ListSource([(root, parent.measure, parent.computed), (child, child_res.measure, child_res.computed),
                         (dataclasses.replace(root, seed=1), parent.measure, parent.computed)])
    measure, mask = reuse.known_pixels(grand, source)
    _, from_child = reuse.coinciding_pixels(grand, child, child_res.measure)
    _, from_root = reuse.coinciding_pixels(grand, root, parent.measure)
    np.testing.assert_array_equal(mask, from_child | from_root)
    assert np.isfinite(measure[mask]).all() and np.isnan(measure[~mask]).all()
    m0, k0 = reuse.known_pixels(grand, None)
    assert not k0.any() and np.isnan(m0).all()


def test_a_child_computed_with_reused_pixels_equals_the_child_from_scratch():
    root = root_spec()
    parent = run_grid(root, kernel="fused")
    child = zoomed(root, root, 0.6, 1.1)
    scratch = run_grid(child, kernel="fused")
    known = reuse.coinciding_pixels(child, root, parent.measure, parent.computed)
    partials = []
    reused = run_grid(child, kernel="fused", known=known, on_partial=lambda m, c, f: partials.append(f))
    np.testing.assert_array_equal(reused.measure, scratch.measure)  # bit for bit
    assert reused.reused == child.n_x * child.n_y // 4  # exactly 25%
    assert reused.refinement["trained"] == child.n_x * child.n_y - reused.reused
    assert reused.refinement["reused"] == reused.reused and reused.computed.all()
    assert reused.steps_run < scratch.steps_run and partials
