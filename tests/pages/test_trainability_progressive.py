"""The explorer after issue 15 (and 16's "Compute on"): one job per view whose live snapshot the map draws while
it runs, the ``refine`` setting in the form and in the link, what a refined or reusing map says about itself, the
"Show computed pixels" veil, and click zooms snapped to the pixel lattice so a 2x zoom shares a quarter of its
pixels with the stored view.

Each test runs against its own throw-away store (results are made through the job runner and the engine, as a
user's would be); grids are tiny (16..64 pixels a side).
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import runs
from cache import default_store
from engine import trainability as tr
from engine.trainability import results, views
from tests.pages.conftest import open_page, page_texts, run_page
from ui.trainability.link import grid_view_query, parse_grid_view_query
from ui.trainability.progressive import fill_nearest, result_notes

PAGE = "pages/1_Trainability_Explorer.py"


@pytest.fixture(autouse=True)
def store(fresh_store):
    return fresh_store


def _tiny(res: int = 16, steps: int = 40, **over) -> tr.GridSpec:
    return dataclasses.replace(tr.PRESETS["tanh"].spec, resolution=(res, res), steps=steps, **over)


def _open(spec: tr.GridSpec, **kwargs) -> AppTest:
    return run_page(PAGE, 120, **grid_view_query(spec.to_dict(), preset="tanh", **kwargs))


def _texts(at: AppTest) -> str:
    return page_texts(at)


def _figure(at: AppTest, key: str) -> dict | None:
    return next((json.loads(el.proto.spec) for el in at.get("plotly_chart") if el.proto.id.endswith(key)), None)


def _done(spec: tr.GridSpec) -> results.GridFiles:
    job_id = runs.submit("grid", spec)
    assert runs.wait(job_id, timeout=180).state == "done", runs.status(job_id)
    return results.load(runs.result_dir(job_id))


# ------------------------------------------------------------------------------------------------ ui helpers


def test_fill_nearest_takes_each_pixel_from_its_nearest_computed_one():
    rng = np.random.default_rng(0)
    measure = rng.normal(size=(9, 11))
    computed = np.zeros(measure.shape, bool)
    computed[::4, ::4] = True
    computed[5, 6] = True
    filled = fill_nearest(measure, computed)
    assert np.array_equal(filled[computed], measure[computed])
    known = np.argwhere(computed)
    for i, j in np.ndindex(measure.shape):
        d = ((known - (i, j)) ** 2).sum(axis=1)
        nearest = {float(measure[tuple(p)]) for p in known[d == d.min()]}
        assert float(filled[i, j]) in nearest, (i, j)
    assert fill_nearest(measure, np.zeros(measure.shape, bool)) is None  # nothing to show yet
    assert np.array_equal(fill_nearest(measure, np.ones(measure.shape, bool)), measure)


def test_result_notes_say_the_inferred_share_the_sampled_error_and_the_reuse():
    stats = {"pixels": 4096, "computed": 369, "inferred": 3727, "reused": 1024, "sample_size": 37,
             "sample_errors": 0, "error_rate": 0.002, "error_ci": [0.001, 0.003]}
    notes = result_notes(_tiny(refine="boundary"), stats)
    assert notes[0].startswith("inferred 91% of pixels; sampled error 0.2% (95% interval 0.1–0.3%)"), notes
    assert notes[1] == "reused 1,024 of 4,096 pixels from stored views"
    exact = dict(stats, inferred=0, reused=0, sample_size=0)
    assert result_notes(_tiny(), exact) == []  # an exact map without reuse says nothing extra
    assert result_notes(_tiny(), None) == []  # a folder written before stats existed


def test_refine_round_trips_through_the_link_and_defaults_to_exact():
    exact = _tiny()
    assert "refine" not in grid_view_query(exact.to_dict(), preset="tanh")  # old links stay as they were
    refined = _tiny(refine="boundary")
    q = grid_view_query(refined.to_dict(), preset="tanh")
    assert q["refine"] == "boundary"
    parsed = parse_grid_view_query(q)
    assert parsed["errors"] == [] and parsed["spec"] == refined
    bad = parse_grid_view_query({**q, "refine": "guess"})
    assert bad["errors"] and bad["errors"][0].startswith("refine")


# ------------------------------------------------------------------------------------------------ the page


def test_a_view_is_one_job_and_the_map_draws_its_live_snapshot():
    """A 64 x 64 view (which used to get a 32 x 32 preview job first) is one job; while it runs, the map is its
    live snapshot: a full picture (every pixel filled from its nearest computed one) before the job is done."""
    spec = _tiny(res=64, steps=1500, seed=31)
    at = _open(spec)
    job_id = default_store().key("grid", spec)
    assert [s.id for s in runs.list_jobs()] == [job_id]
    snap, deadline = None, time.time() + 120
    while time.time() < deadline:
        folder = runs.live_dir(job_id)
        snap = results.read_live(folder) if folder is not None else None
        if snap is not None and 0 < snap[1].mean() < 1:
            break
        assert runs.status(job_id).state in ("queued", "running"), runs.status(job_id)
        time.sleep(0.2)
    assert snap is not None, "the job wrote a live snapshot after its first pass"
    at.run()
    assert not at.exception, at.exception
    fig = _figure(at, "tx_live_map")
    if fig is None:  # the job ended between the snapshot and the run: nothing live left to check
        assert runs.status(job_id).state == "done"
        pytest.skip("the job finished before the page drew its live map")
    z = np.asarray(_array(fig["data"][0]["z"]), dtype=float)
    assert z.shape == (64, 64) and np.isfinite(z).all()  # every pixel drawn, the untrained ones from a neighbour
    assert len(np.unique(z)) < 64 * 64  # ... so the picture is still a coarse mosaic of the trained ones
    assert "of the pixels trained so far" in _texts(at)
    assert at.get("plotly_chart") and not any("tx_map_" in el.proto.id for el in at.get("plotly_chart"))
    assert [s.id for s in runs.list_jobs()] == [job_id]  # still one job
    runs.cancel(job_id)


def test_refine_is_in_the_advanced_form_and_in_the_link():
    at = open_page(PAGE, 120).run()
    box = at.selectbox(key="tx_f_refine")
    assert box.value == "exact" and list(box.options) == ["exact", "boundary"]
    assert "refine" not in at.query_params
    box.set_value("boundary")
    at.button(key="tx_apply").click().run()
    assert not at.exception, at.exception
    assert at.session_state["tx"]["fields"]["refine"] == "boundary"
    assert at.query_params["refine"] == "boundary"
    again = open_page(PAGE, 120, **{k: at.query_params[k] for k in at.query_params}).run()  # the link reopens
    assert not again.exception, again.exception
    assert again.selectbox(key="tx_f_refine").value == "boundary"
    assert tr.GridSpec.from_dict(again.session_state["tx"]["fields"]).refine == "boundary"
    again.selectbox(key="tx_preset").set_value("relu").run()  # a preset is exact again, widget included
    assert again.selectbox(key="tx_f_refine").value == "exact" and "refine" not in again.query_params


def test_a_refined_map_says_what_was_inferred_and_can_show_the_computed_pixels():
    spec = _tiny(res=48, steps=60, seed=32, refine="boundary")
    shown = _done(spec)
    stats = shown.stats
    assert stats["inferred"] > 0, stats  # a 48-px tanh map has uniform blocks to infer
    at = _open(spec)
    text = _texts(at)
    share = f"Inferred {100 * stats['inferred'] / stats['pixels']:.0f}% of pixels"
    assert share in text, text
    if stats["sample_size"]:
        lo, hi = stats["error_ci"]
        assert f"sampled error {100 * stats['error_rate']:.2g}% (95% interval {100 * lo:.2g}–{100 * hi:.2g}%)" in text
    names = [t.get("name") for t in _map_figure(at)["data"]]
    assert "inferred" not in names
    at.checkbox(key="tx_show_computed").check().run()
    assert not at.exception, at.exception
    traces = _map_figure(at)["data"]
    veil = next(t for t in traces if t.get("name") == "inferred")
    assert traces.index(veil) == 1  # just above the map, under the click overlay
    z = np.array(_array(veil["z"]), dtype=float)
    assert np.array_equal(np.isnan(z), shown.computed)  # exactly the inferred pixels are veiled


def test_an_exact_map_has_no_refinement_caption_and_no_switch():
    spec = _tiny(seed=33)
    _done(spec)
    at = _open(spec)
    assert "nferred" not in _texts(at)
    assert not [c for c in at.checkbox if c.key == "tx_show_computed"]


def test_a_2x_click_snaps_and_the_zoomed_map_says_it_reused_a_quarter():
    """The root view is stored; a factor-2 click (the page's own handler) goes to a view on the root's pixel
    lattice; its job takes the coinciding quarter of its pixels from the store and the map says so."""
    base = _tiny(res=32, steps=60, seed=34)
    _done(base)
    at = _open(base)
    state = at.session_state["tx"]
    from ui.trainability import navigation

    view = navigation.click_zoom(state, 1.3, 2.2)
    child, _ = views.view_spec(base, view)
    assert child.lattice is not None and (view[1] - view[0]) == pytest.approx((base.x_range[1] - base.x_range[0]) / 2, rel=1e-9)
    coincide = np.isin(child.x_values, base.x_values).sum() * np.isin(child.y_values, base.y_values).sum()
    assert coincide == 32 * 32 // 4
    root = (*base.x_range, *base.y_range)
    at = _open(base, path=[root, view], level=1)
    job_id = default_store().key("grid", child)
    assert runs.wait(job_id, timeout=180).state == "done"
    stats = results.load(runs.result_dir(job_id)).stats
    assert stats["reused"] == 256, stats
    at.run()
    assert "Reused 256 of 1,024 pixels from stored views" in _texts(at)


def test_compute_on_options_go_with_the_job_not_into_its_key(monkeypatch):
    """What "Compute on" returns is passed to runs.submit as options: kept in the job record, not in its id."""
    from ui.trainability import cluster

    monkeypatch.setattr(cluster, "compute_on", lambda state: "tcp://127.0.0.1:9")  # the address it returns
    spec = _tiny(seed=35)
    _open(spec)
    job = runs.status(default_store().key("grid", spec))
    assert job is not None and job.options == {"scheduler": "tcp://127.0.0.1:9"}
    runs.cancel(job.id)


def _map_figure(at: AppTest) -> dict:
    return next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if "tx_map_" in el.proto.id)


def _array(value):
    """A figure JSON's array: a list, or plotly's typed array ``{"dtype", "bdata", "shape"}``."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        if shape:
            data = data.reshape([int(v) for v in str(shape).split(",")])
        return data
    return value


def test_a_zoom_video_reuses_the_keyframes_the_explorer_stored():
    """Both levels of a 2x zoom are stored at 32 px; a 32-px video from the full range into level 1 takes both
    keyframes from the store (the page says so before and after) instead of training them again."""
    base = _tiny(res=32, steps=60, seed=36)
    root = (*base.x_range, *base.y_range)
    level1 = views.snapped_zoom(root, base.resolution, root, 1.3, 2.2, 2.0)
    for view in (root, level1):
        _done(views.view_spec(base, view)[0])
    at = _open(base, path=[root, level1], level=1)
    at.selectbox(key="tx_v_res").set_value(32)
    at.slider(key="tx_v_fpl").set_value(2).run()
    assert not at.exception, at.exception
    assert "2 keyframes (2 already stored)" in _texts(at)
    at.button(key="tx_v_go").click().run()
    video = [s for s in runs.list_jobs() if s.kind == "zoom_video"]
    assert len(video) == 1 and runs.wait(video[0].id, timeout=180).state == "done"
    at.run()
    assert not at.exception, at.exception
    assert "2 of 2 keyframes reused from stored views" in _texts(at)


def test_a_zoom_draws_the_pixels_it_reuses_before_its_job_has_trained_any(monkeypatch):
    """Issue 15's first picture after a click: the quarter of a 2x zoom's pixels that the stored view above holds
    (the very bits its job will reuse) is drawn at once, before the job trained a pixel; here the job waits
    behind another one, so nothing else could have drawn it."""
    base = _tiny(res=32, steps=60, seed=37)
    stored = _done(base)
    monkeypatch.setenv("FRACTAL_LAB_MAX_JOBS", "1")
    blocker = runs.submit("grid", _tiny(res=64, steps=5000, seed=38))  # holds the only job slot
    root = (*base.x_range, *base.y_range)
    view = views.snapped_zoom(root, base.resolution, root, 1.3, 2.2, 2.0)
    child, _ = views.view_spec(base, view)
    at = _open(base, path=[root, view], level=1)
    job_id = default_store().key("grid", child)
    assert runs.status(job_id).state == "queued", runs.status(job_id)
    text = _texts(at)
    assert "Starting: 25% of the pixels taken from the stored views" in text, text
    fig = _figure(at, "tx_live_map")
    z = np.asarray(_array(fig["data"][0]["z"]), dtype=float)
    assert z.shape == (32, 32) and np.isfinite(z).all()  # the whole view drawn, each pixel from a reused one
    job, (measure, known) = at.session_state["tx_reused"]
    assert job == job_id and known.sum() == 32 * 32 // 4
    rows, cols = np.isin(child.y_values, base.y_values), np.isin(child.x_values, base.x_values)
    assert np.array_equal(known, np.outer(rows, cols))
    parent_rows, parent_cols = np.isin(base.y_values, child.y_values), np.isin(base.x_values, child.x_values)
    assert np.array_equal(measure[known], stored.measure[np.ix_(parent_rows, parent_cols)].reshape(-1))  # same bits
    runs.delete(blocker)
