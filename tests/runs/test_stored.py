"""runs.stored.StoredGrids: the store as the engine's GridSource. Stored grids of the same experiment lend the
pixels they share with a new grid, bit for bit; damaged entries are never served; a read counts as a use only
when pixels are taken."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

import runs
from cache import default_store
from engine.trainability import results, reuse, views
from engine.trainability.grid import run_grid
from engine.trainability.spec import GridSpec
from runs.stored import StoredGrids

ROOT = GridSpec(width=5, steps=30, resolution=(16, 16), x_range=(-1.0, 2.5), y_range=(-1.0, 2.5), seed=3)
OLD = 1_000_000_000.0  # an access time long ago


def store_grid(spec: GridSpec, tmp_path) -> str:
    """Compute ``spec`` in this process and commit it to the store as a grid job would; its key."""
    folder = tmp_path / f"grid-{spec.content_hash()}"
    results.run_to_dir(spec, folder)
    st = default_store()
    key = st.key("grid", spec)
    st.commit(key, folder, {"kind": "grid", "spec": spec.to_dict()})
    os.utime(st.path(key, touch=False) / ".last_access", (OLD, OLD))
    return key


def last_access(key: str) -> float:
    return (default_store().path(key, touch=False) / ".last_access").stat().st_mtime


def zoomed(x: float = 0.8, y: float = 0.6) -> GridSpec:
    view = views.snapped_zoom(views.view_of(ROOT), ROOT.resolution, views.view_of(ROOT), x, y, 2)
    spec, _ = views.view_spec(ROOT, view)
    assert spec.lattice is not None
    return spec


def test_exact_serves_the_stored_grid_bit_for_bit_and_counts_as_a_use(env, tmp_path):
    key = store_grid(ROOT, tmp_path)
    src = StoredGrids()
    stored = src.exact(ROOT)
    np.testing.assert_array_equal(stored, results.load(default_store().path(key, touch=False)).measure)
    assert src.taken == [key] and last_access(key) > OLD
    other = dataclasses.replace(ROOT, seed=4)
    assert src.exact(other) is None and src.taken == [key]


def test_similar_lends_only_grids_that_share_pixels_and_touches_only_those(env, tmp_path):
    root = store_grid(ROOT, tmp_path)
    other_experiment = store_grid(dataclasses.replace(ROOT, activation="relu"), tmp_path)
    elsewhere = store_grid(dataclasses.replace(ROOT, x_range=(3.0, 4.0), y_range=(3.0, 4.0)), tmp_path)
    # overlaps the zoom but on a shifted linspace: no pixel in common
    shifted = store_grid(dataclasses.replace(ROOT, x_range=(-0.9, 2.6), y_range=(-0.9, 2.6)), tmp_path)
    spec = zoomed()
    src = StoredGrids()
    assert [k for k, _ in src.candidates(spec)] == [shifted, root]  # overlapping, same experiment, newest first
    lent = list(src.similar(spec))
    assert [s for s, _, _ in lent] == [ROOT] and src.taken == [root]
    assert last_access(root) > OLD
    for key in (other_experiment, elsewhere, shifted):
        assert last_access(key) == OLD  # looked at (or not even that), nothing taken: no use
    measure, mask = reuse.known_pixels(spec, StoredGrids())
    assert mask.sum() == 8 * 8  # a 2x zoom snapped to even indices shares a quarter of its pixels
    fresh = run_grid(spec, kernel="fused").measure
    np.testing.assert_array_equal(measure[mask], fresh[mask])


def test_newest_first_and_capped(env, tmp_path):
    keys = [store_grid(dataclasses.replace(ROOT, resolution=(n, n)), tmp_path) for n in (8, 10, 12)]
    assert [k for k, _ in StoredGrids().candidates(ROOT)] == keys[::-1]
    assert [k for k, _ in StoredGrids(limit=2).candidates(ROOT)] == keys[:0:-1]


def test_a_damaged_entry_is_never_served(env, tmp_path):
    key = store_grid(ROOT, tmp_path)
    path = default_store().path(key, touch=False) / results.MEASURE
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # one flipped bit in a pixel's value
    path.write_bytes(bytes(data))
    src = StoredGrids()
    assert src.exact(ROOT) is None
    assert list(src.similar(zoomed())) == [] and src.taken == []


def test_a_zoom_job_takes_its_shared_pixels_from_the_stored_level_above(env):
    """Through the job runner: the worker hands the task StoredGrids, the grid trains only the rest."""
    root_job = runs.submit("grid", ROOT)
    assert runs.wait(root_job, timeout=180).state == "done"
    spec = zoomed()
    job = runs.submit("grid", spec)
    st = runs.wait(job, timeout=180)
    assert st.state == "done", st.message
    files = results.load(runs.result_dir(job))
    assert files.stats["reused"] == 64 and files.stats["network_steps_full"] == (256 - 64) * spec.steps
    np.testing.assert_array_equal(files.measure, run_grid(spec, kernel="fused").measure)
    assert json.loads((runs.result_dir(root_job) / results.SPEC).read_text()) == ROOT.to_dict()
