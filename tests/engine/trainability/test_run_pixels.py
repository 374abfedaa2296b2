"""Any set of pixels, computed on its own: what refinement passes, reuse and a cluster are built on.

The fused kernel trains each network in its own loop nest, so a pixel's bits cannot depend on which batch, pass
or thread computed it: that is asserted bit for bit. The eager kernel runs batches as tensor ops whose BLAS
rounding depends on their shape, so it is held to verdicts and a relative 1e-4 instead (never bitwise).
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from engine.errors import Cancelled
from engine.trainability import views
from engine.trainability.grid import run_grid, run_pixels
from engine.trainability.spec import GridSpec


def small(**over) -> GridSpec:
    kw = dict(width=5, steps=40, resolution=(12, 10), x_range=(-1.0, 2.5), y_range=(-1.0, 2.5), seed=3)
    kw.update(over)
    return GridSpec(**kw)


def lattice_small() -> GridSpec:
    base = small(resolution=(16, 16))
    root = views.view_of(base)
    spec, _ = views.view_spec(base, views.snapped_zoom(root, 16, root, 0.9, 0.6, 2))
    assert spec.lattice is not None
    return spec


@pytest.mark.parametrize("make", [small, lambda: small(activation="relu", batch_size=7), lattice_small],
                         ids=["tanh", "relu-minibatch", "on-a-lattice"])
def test_fused_pixels_have_the_grids_bits_in_any_subset_and_order(make):
    spec = make()
    full = run_grid(spec, kernel="fused").measure.ravel()
    assert (full < 0).any() and (full >= 0).any()  # both regions: the comparison means something
    rng = np.random.default_rng(0)
    subset = rng.permutation(full.size)[: full.size // 3]
    measure, steps = run_pixels(spec, subset, kernel="fused")
    assert measure.dtype == np.float64 and measure.shape == subset.shape
    np.testing.assert_array_equal(measure, full[subset])  # bit for bit
    assert 0 < steps <= subset.size * spec.steps
    # one pixel alone, and every pixel in reverse order
    one, _ = run_pixels(spec, subset[:1], kernel="fused")
    np.testing.assert_array_equal(one, full[subset[:1]])
    back, _ = run_pixels(spec, np.arange(full.size)[::-1], kernel="fused")
    np.testing.assert_array_equal(back, full[::-1])


def test_eager_pixels_agree_in_verdict_and_to_rounding():
    spec = small()
    full = run_grid(spec, kernel="eager").measure.ravel()
    subset = np.random.default_rng(1).permutation(full.size)[:40]
    measure, _ = run_pixels(spec, subset, kernel="eager")
    np.testing.assert_array_equal(measure < 0, full[subset] < 0)
    np.testing.assert_allclose(measure, full[subset], rtol=1e-4, atol=0)


def test_worker_processes_give_the_same_bits(monkeypatch):
    spec = small(resolution=(8, 6))
    full = run_grid(spec, kernel="fused").measure.ravel()
    monkeypatch.setenv("FRACTAL_LAB_GRID_PROCESSES", "1")
    monkeypatch.setenv("FRACTAL_LAB_THREADS", "2")
    subset = np.arange(0, full.size, 3)
    measure, _ = run_pixels(spec, subset, kernel="fused")
    np.testing.assert_array_equal(measure, full[subset])


def test_empty_set_and_bad_indices():
    spec = small()
    measure, steps = run_pixels(spec, np.array([], dtype=np.int64))
    assert measure.shape == (0,) and steps == 0
    with pytest.raises(ValueError, match="flat_indices: must lie in"):
        run_pixels(spec, [0, spec.n_x * spec.n_y])
    with pytest.raises(ValueError, match="flat_indices: must lie in"):
        run_pixels(spec, [-1])
    with pytest.raises(ValueError, match="flat_indices: must be a 1-D array of integer"):
        run_pixels(spec, np.array([0.5]))
    with pytest.raises(ValueError, match="flat_indices: must be a 1-D array"):
        run_pixels(spec, np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="spec: must be a GridSpec"):
        run_pixels({"width": 5}, [0])


def test_progress_is_monotone_and_cancel_raises():
    spec = small(steps=200)
    seen = []
    run_pixels(spec, np.arange(60), progress=seen.append, kernel="fused")
    assert seen and all(0 <= a <= b <= 1 for a, b in zip(seen, seen[1:]))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        run_pixels(spec, np.arange(60), cancel=cancel, kernel="fused")


def test_grid_result_says_every_pixel_was_computed_on_the_exact_path():
    res = run_grid(small(resolution=(6, 5)), kernel="fused")
    assert res.computed.dtype == np.bool_ and res.computed.shape == (5, 6) and res.computed.all()
    assert res.reused == 0
    r = res.refinement
    assert r["mode"] == "exact" and r["pixels"] == r["computed"] == r["trained"] == 30 and r["inferred"] == 0


def test_known_must_fit_the_grid():
    spec = small(resolution=(6, 5))
    good = (np.zeros(spec.shape), np.zeros(spec.shape, dtype=bool))
    with pytest.raises(ValueError, match="known: needs a float measure and a bool mask of shape"):
        run_grid(spec, known=(np.zeros((2, 2)), good[1]))
    with pytest.raises(ValueError, match="known: needs a float measure and a bool mask"):
        run_grid(spec, known=(good[0], good[0]))
    bad = good[0].copy()
    bad[0, 0] = np.nan
    mask = good[1].copy()
    mask[0, 0] = True
    with pytest.raises(ValueError, match="known: the measure of a known pixel must be finite"):
        run_grid(spec, known=(bad, mask))
    with pytest.raises(ValueError, match="known: must be None or a pair"):
        run_grid(spec, known=np.zeros(spec.shape))
    assert dataclasses.replace(spec, refine="boundary").refine == "boundary"


@pytest.mark.parametrize("kernel", ["fused", "eager"])
def test_exact_grid_through_refinement_passes_equals_the_tiled_grid(kernel):
    spec = small(resolution=(20, 17))
    tiled = run_grid(spec, kernel=kernel)
    partials, seen = [], []
    passes = run_grid(spec, kernel=kernel, on_partial=lambda m, c, f: partials.append((m.copy(), c.copy(), f)),
                      progress=seen.append)
    if kernel == "fused":
        np.testing.assert_array_equal(passes.measure, tiled.measure)  # bit for bit
    else:  # other batch shapes: BLAS rounds differently (see the module notes)
        np.testing.assert_array_equal(passes.measure < 0, tiled.measure < 0)
        np.testing.assert_allclose(passes.measure, tiled.measure, rtol=1e-4, atol=0)
    assert passes.computed.all() and passes.reused == 0
    assert passes.refinement["trained"] == 340 and passes.refinement["inferred"] == 0
    assert len(partials) >= 2 and partials[0][1].sum() < 340  # a coarse picture came first
    for m, c, f in partials:
        np.testing.assert_array_equal(m[c] < 0, passes.measure[c] < 0)
    assert seen[-1] == 1.0 and all(a <= b for a, b in zip(seen, seen[1:]))


def test_refined_grid_cancels_between_and_within_passes():
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        run_grid(small(), kernel="fused", on_partial=lambda *a: None, cancel=cancel)
