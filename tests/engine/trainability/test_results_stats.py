"""The grid's result folder after refinement and reuse: computed.npy, stats.json, live snapshots while it runs,
stored pixels taken instead of trained, and older folders still read."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from engine.errors import DamagedResult
from engine.trainability import results, reuse, views
from engine.trainability.grid import run_grid
from engine.trainability.spec import GridSpec

cli = importlib.import_module("engine.trainability.__main__")

STATS_KEYS = {"pixels", "computed", "reused", "inferred", "sample_size", "sample_errors", "error_rate", "error_ci",
              "network_steps", "network_steps_full", "elapsed_s", "dtype", "device", "kernel", "scheduler"}


def small(n: int = 16, **over) -> GridSpec:
    kw = dict(width=5, steps=40, resolution=(n, n), x_range=(-1.0, 2.5), y_range=(-1.0, 2.5), seed=3)
    kw.update(over)
    return GridSpec(**kw)


class ListSource:
    def __init__(self, grids):
        self.grids = list(grids)

    def similar(self, spec):
        return [(s, m, c) for s, m, c in self.grids if reuse.same_experiment(spec, s)]

    def exact(self, spec):
        return next((m for s, m, _ in self.grids if s.content_hash() == spec.content_hash()), None)


def test_an_exact_grid_writes_every_file_and_its_stats(tmp_path):
    spec = small()
    results.run_to_dir(spec, tmp_path, scheduler="local")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(results.FILES)  # no live.npz left behind
    files = results.load(tmp_path)
    np.testing.assert_array_equal(files.measure, run_grid(spec, kernel="fused").measure)  # the same bits
    assert files.computed.dtype == np.bool_ and files.computed.all()
    stats = files.stats
    assert STATS_KEYS <= set(stats)
    assert stats["pixels"] == stats["computed"] == 256 and stats["reused"] == stats["inferred"] == 0
    assert 0 < stats["network_steps"] <= stats["network_steps_full"] == 256 * spec.steps
    assert stats["dtype"] == "float64" and stats["device"] == "cpu" and stats["kernel"] in ("fused", "eager")
    assert stats["scheduler"] is None and stats["elapsed_s"] > 0 and len(stats["error_ci"]) == 2


def test_a_boundary_grid_counts_what_it_inferred(tmp_path):
    spec = small(32, refine="boundary")
    results.run_to_dir(spec, tmp_path)
    files = results.load(tmp_path)
    s = files.stats
    assert s["computed"] + s["inferred"] == s["pixels"] == 1024
    assert s["computed"] == int(files.computed.sum())
    assert s["network_steps_full"] == s["trained"] * spec.steps
    np.testing.assert_array_equal(files.converged, files.measure < 0)
    assert 0.0 <= s["error_ci"][0] <= s["error_rate"] <= s["error_ci"][1] <= 1.0


def test_live_snapshots_appear_while_it_runs_and_read_live_never_raises(tmp_path):
    spec = small(32)
    seen = []

    def progress(fraction, info=None):
        live = results.read_live(tmp_path)
        if live is not None:
            seen.append(live)

    results.run_to_dir(spec, tmp_path, progress=progress)
    assert seen, "no live snapshot was readable while the grid ran"
    final = results.load(tmp_path).measure
    for measure, computed in seen:
        assert measure.shape == computed.shape == spec.shape
        np.testing.assert_array_equal(measure[computed], final[computed])
    assert results.read_live(tmp_path) is None  # removed once the folder is complete
    assert results.read_live(tmp_path / "missing") is None
    (tmp_path / results.LIVE).write_bytes(b"not a zip")
    assert results.read_live(tmp_path) is None
    np.savez(tmp_path / results.LIVE, measure=np.zeros((2, 2)), computed=np.zeros((3, 3), dtype=bool))
    assert results.read_live(tmp_path) is None


def test_stored_pixels_are_taken_not_trained(tmp_path):
    root = small()
    parent = run_grid(root, kernel="fused")
    view = views.snapped_zoom(views.view_of(root), root.resolution, views.view_of(root), 0.6, 1.1, 2)
    child, _ = views.view_spec(root, view)
    source = ListSource([(root, parent.measure, parent.computed)])
    results.run_to_dir(child, tmp_path / "child", sources=source)
    files = results.load(tmp_path / "child")
    np.testing.assert_array_equal(files.measure, run_grid(child, kernel="fused").measure)
    assert files.stats["reused"] == 64 and files.stats["trained"] == 192  # exactly 25% reused
    assert files.stats["network_steps_full"] == 192 * child.steps
    # the very same grid already stored: copied, nothing trained
    results.run_to_dir(root, tmp_path / "again", sources=source)
    again = results.load(tmp_path / "again")
    np.testing.assert_array_equal(again.measure, parent.measure)
    assert again.stats["trained"] == 0 and again.stats["network_steps"] == 0 and again.stats["reused"] == 256


def test_older_folders_still_load_and_damaged_new_files_are_named(tmp_path):
    spec = small(8)
    results.run_to_dir(spec, tmp_path)
    (tmp_path / results.COMPUTED).unlink()
    (tmp_path / results.STATS).unlink()
    old = results.load(tmp_path)
    assert old.computed.all() and old.computed.shape == spec.shape and old.stats is None
    np.save(tmp_path / results.COMPUTED, np.ones((3, 3), dtype=bool))
    with pytest.raises(DamagedResult, match="computed.npy"):
        results.load(tmp_path)
    np.save(tmp_path / results.COMPUTED, np.ones(spec.shape))
    with pytest.raises(DamagedResult, match="computed.npy"):
        results.load(tmp_path)
    np.save(tmp_path / results.COMPUTED, np.ones(spec.shape, dtype=bool))
    (tmp_path / results.STATS).write_text(json.dumps([1, 2]))
    with pytest.raises(DamagedResult, match="stats.json"):
        results.load(tmp_path)


def test_cli_scheduler_flag(tmp_path, capsys):
    out = tmp_path / "g"
    args = ["--preset", "tanh", "--resolution", "8", "--steps", "20", "--width", "4", "--out", str(out)]
    assert cli.main(args + ["--scheduler", "local"]) == 0
    assert results.load(out).stats["scheduler"] is None
    capsys.readouterr()
    assert cli.main(args + ["--scheduler", "http://nowhere", "--out", str(tmp_path / "h")]) == 2
    out_text, err_text = capsys.readouterr()
    assert not out_text and not (tmp_path / "h").exists()  # refused before anything was written
    err = err_text.strip().splitlines()
    assert len(err) == 1 and "FRACTAL_LAB_DASK_SCHEDULER" in err[0]
