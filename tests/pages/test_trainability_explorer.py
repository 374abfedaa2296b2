"""AppTest checks of the Trainability Explorer page, and unit tests of the ui helpers it stands on.

Grids here are tiny (16 x 16 pixels, 40 steps) so a real job finishes in a second or two on a shared 2-core box.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import open_page

import runs
from cache import default_store
from engine import trainability as tr
from engine.trainability.views import box_view, zoom_view
from ui.curves import curves_figure
from ui.heatmap import axis_ticks
from ui.state import decode_query_value, encode_query_value, spec_query
from ui.trainability.link import grid_view_query, parse_grid_view_query

ROOT = Path(__file__).resolve().parents[2]
PAGE_FILE = "pages/1_Trainability_Explorer.py"


pytestmark = pytest.mark.usefixtures("stop_leftover_jobs")


def _app() -> AppTest:
    return open_page(PAGE_FILE)


def _tiny(preset: str = "tanh", **over) -> tr.GridSpec:
    spec = tr.PRESETS[preset].spec
    return dataclasses.replace(spec, resolution=(16, 16), steps=40, **over)


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


# ------------------------------------------------------------------------------------------------ ui helpers


def test_query_values_round_trip_exactly():
    path = [(-3.0, 6.0, -3.0, 6.0), (0.12345678901234568, 0.1234567890123457, 1e-09, 2.5)]
    text = encode_query_value(path)
    assert decode_query_value(text, [(0.0, 0.0, 0.0, 0.0)]) == path
    assert decode_query_value(encode_query_value((64, 32)), (0, 0)) == (64, 32)
    assert decode_query_value("none", 0) is None
    assert decode_query_value("true", False) is True
    with pytest.raises(ValueError):
        decode_query_value("1,2,3", (0, 0))
    with pytest.raises(ValueError):
        decode_query_value("maybe", False)


def test_zoom_and_box_views():
    assert zoom_view((-3, 6, -3, 6), 1.5, 0.0, 2) == (-0.75, 3.75, -2.25, 2.25)
    assert zoom_view((0, 1, 0, 1), 0.5, 0.5, 0.5) == (-0.5, 1.5, -0.5, 1.5)
    assert box_view([2.0, 1.0], [0.5, -0.5]) == (1.0, 2.0, -0.5, 0.5)
    with pytest.raises(ValueError, match="box"):
        box_view([1.0, 1.0], [0.0, 1.0])


@pytest.mark.parametrize("lo,hi", [(-3, 6), (0.123456789, 0.123456799), (2.0, 2.000001), (-1e-13, 1e-13)])
def test_axis_ticks_stay_distinct_at_deep_zoom(lo, hi):
    vals, texts = axis_ticks(lo, hi)
    assert 3 <= len(vals) <= 12
    assert all(lo - 1e-12 * abs(hi - lo) <= v <= hi + 1e-9 * abs(hi - lo) for v in vals)
    assert len(set(texts)) == len(texts), texts


def test_grid_view_query_round_trip():
    spec = dataclasses.replace(tr.PRESETS["tanh"].spec, x_range=(0.5, 0.75), y_range=(1.0, 1.25))
    q = grid_view_query(spec.to_dict())
    assert q["preset"] == "tanh"
    parsed = parse_grid_view_query(q)
    assert parsed["errors"] == []
    root = tr.PRESETS["tanh"].spec
    assert parsed["path"][0] == (*root.x_range, *root.y_range)
    assert parsed["path"][parsed["level"]] == (0.5, 0.75, 1.0, 1.25)
    restored = dataclasses.replace(parsed["spec"], x_range=(0.5, 0.75), y_range=(1.0, 1.25))
    assert restored == spec
    assert parse_grid_view_query({"unrelated": "1"}) is None
    bad = parse_grid_view_query({"preset": "tanh", "width": "-4", "path": "0,1,0,1"})
    assert bad["errors"] and "width" in bad["errors"][0]
    assert bad["spec"] == tr.PRESETS["tanh"].spec


def test_generic_spec_links_parse_with_a_way_out():
    """``spec_query(GridSpec, spec)`` (how the Runs page links a grid or a video): no preset, no path. A spec that
    matches a preset is reached from the preset's full range; one that matches none opens on its own view."""
    deep = tr.preset("relu", resolution=16, x_range=(0.5, 0.75), y_range=(1.0, 1.25))
    parsed = parse_grid_view_query(spec_query(tr.GridSpec, deep.to_dict()))
    root = tr.PRESETS["relu"].spec
    assert parsed["errors"] == [] and parsed["preset"] == "relu"
    assert parsed["path"] == [(*root.x_range, *root.y_range), (0.5, 0.75, 1.0, 1.25)] and parsed["level"] == 1
    assert dataclasses.replace(parsed["spec"], x_range=deep.x_range, y_range=deep.y_range) == deep
    whole = tr.preset("offset", resolution=16, dtype="float32")
    parsed = parse_grid_view_query(spec_query(tr.GridSpec, whole.to_dict()))
    assert parsed["preset"] == "offset" and len(parsed["path"]) == 1 and parsed["spec"] == whole
    odd = dataclasses.replace(deep, steps=40)  # no preset trains 40 steps: its own view is the whole path
    parsed = parse_grid_view_query(spec_query(tr.GridSpec, odd.to_dict()))
    assert parsed["path"] == [(0.5, 0.75, 1.0, 1.25)] and parsed["spec"] == odd
    bad = parse_grid_view_query({**spec_query(tr.GridSpec, deep.to_dict()), "steps": "3"})
    assert bad["errors"][0].startswith("steps:") and bad["spec"] == tr.PRESETS["relu"].spec  # the preset's own


def test_curves_figure_skips_missing_and_non_finite():
    events = [{"step": 0, "loss": 1.0}, {"step": 1, "loss": float("inf")}, {"step": 2, "loss": 0.5},
              {"note": "no step"}]
    fig = curves_figure(events, x="step", y="loss", log_y=True)
    assert list(fig.data[0].x) == [0.0, 2.0] and list(fig.data[0].y) == [1.0, 0.5]


# ------------------------------------------------------------------------------------------------ the page


def test_page_loads_without_exception():
    at = _app().run()
    assert not at.exception, at.exception
    assert at.title[0].value.endswith("Trainability Explorer")
    assert at.selectbox(key="tx_preset").value == "tanh"
    assert at.button(key="tx_compute")
    assert "network-steps" in _texts(at)


def test_choosing_a_preset_and_pressing_compute_starts_a_job():
    at = _app().run()
    at.selectbox(key="tx_preset").set_value("relu").run()
    assert not at.exception, at.exception
    at.selectbox(key="tx_res").set_value((16, 16)).run()
    at.number_input(key="tx_f_steps").set_value(40)
    at.button(key="tx_apply").click().run()
    assert not at.exception, at.exception
    spec = _tiny("relu")
    key = default_store().key("grid", spec)
    assert runs.status(key) is None or runs.status(key).state == "done"
    at.button(key="tx_compute").click().run()
    assert not at.exception, at.exception
    status = runs.status(key)
    assert status is not None and status.state in ("queued", "running", "done"), status
    status = runs.wait(key, timeout=120)
    assert status.state == "done", status
    at.run()
    assert not at.exception, at.exception
    assert any(m.label.startswith("Converged fraction") for m in at.metric)
    assert "Downloads" in _texts(at)


def test_preset_change_resets_the_setup_to_that_experiment():
    at = _app().run()
    at.selectbox(key="tx_preset").set_value("offset").run()
    assert not at.exception, at.exception
    offset = tr.PRESETS["offset"].spec
    assert at.number_input(key="tx_f_x1").value == offset.x_range[1]
    assert at.selectbox(key="tx_f_phase_space").value == "offset_vs_lr"
    assert at.query_params["phase_space"] == "offset_vs_lr"
    assert tr.PRESETS["offset"].description in _texts(at)


def test_bad_field_value_shows_error_not_traceback():
    at = _app().run()
    at.number_input(key="tx_f_width").set_value(-3)
    at.button(key="tx_apply").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("width" in e for e in errors), errors
    # nothing was applied: the spec in the URL is still the preset's
    assert at.query_params["width"] == str(tr.PRESETS["tanh"].spec.width)
    # a blank-or-number field with text in it gets the same treatment
    at.text_input(key="tx_f_dataset_size").set_value("lots")
    at.number_input(key="tx_f_width").set_value(16)
    at.button(key="tx_apply").click().run()
    assert not at.exception, at.exception
    assert any("dataset_size" in e.value for e in at.error)


def test_query_params_restore_the_view():
    base = _tiny("tanh")
    root = (*base.x_range, *base.y_range)
    deep = zoom_view(zoom_view(root, 1.0, 2.0, 2), 1.1, 2.1, 4)
    q = grid_view_query(base.to_dict(), preset="tanh", path=[root, zoom_view(root, 1.0, 2.0, 2), deep],
                           level=2, factor=4.0)
    at = _app()
    for k, v in q.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    state = at.session_state["tx"]
    assert state["level"] == 2 and tuple(state["path"][2]) == deep
    assert state["factor"] == 4.0 and tuple(state["fields"]["resolution"]) == (16, 16)
    assert at.selectbox(key="tx_factor").value == 4.0
    # the URL the page writes back is the same view
    assert at.query_params["path"] == q["path"] and at.query_params["level"] == "2"
    # a link opens computing: the deep view's job exists
    spec = dataclasses.replace(base, x_range=(deep[0], deep[1]), y_range=(deep[2], deep[3]))
    if spec.dtype == "float32" and not tr.float32_resolves(spec):
        spec = dataclasses.replace(spec, dtype="float64")
    status = runs.status(default_store().key("grid", spec))
    assert status is not None
    runs.cancel(status.id)
    # back goes to level 1 and the URL follows
    at.button(key="tx_back").click().run()
    assert at.session_state["tx"]["level"] == 1 and at.query_params["level"] == "1"


def test_generic_spec_link_opens_the_view_and_back_leads_out():
    deep = (0.5, 0.75, 1.0, 1.25)
    spec = tr.preset("relu", resolution=16, x_range=deep[:2], y_range=deep[2:])
    at = _app()
    for k, v in spec_query(tr.GridSpec, spec.to_dict()).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    assert not at.warning, [w.value for w in at.warning]
    state = at.session_state["tx"]
    root = tr.PRESETS["relu"].spec
    assert state["preset"] == "relu" and state["level"] == 1 and tuple(state["path"][1]) == deep
    assert tuple(state["path"][0]) == (*root.x_range, *root.y_range)
    assert at.query_params["level"] == "1" and at.query_params["preset"] == "relu"  # rewritten as the page's link
    status = runs.status(default_store().key("grid", spec))  # the linked grid itself is what computes
    assert status is not None
    runs.cancel(status.id)
    at.button(key="tx_back").click().run()
    assert at.session_state["tx"]["level"] == 0 and at.query_params["level"] == "0"


def test_broken_link_warns_and_falls_back():
    at = _app()
    at.query_params["preset"] = "nonsense"
    at.query_params["width"] = "wide"
    at.query_params["path"] = "1,2"
    at.run()
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "preset" in warnings and "width" in warnings


def test_pixel_inspection_replays_the_grids_verdict():
    spec = _tiny("tanh", seed=3)
    job_id = runs.submit("grid", spec)
    assert runs.wait(job_id, timeout=120).state == "done"
    grid = np.load(runs.result_dir(job_id) / "converged.npy")
    # one converged and one diverged pixel, each clicked slightly off its centre (the page snaps to the pixel)
    picks = [tuple(np.argwhere(grid)[0]), tuple(np.argwhere(~grid)[0])]
    for i, j in picks:
        click = (spec.x_values[j] + 0.2 * (spec.x_values[1] - spec.x_values[0]), spec.y_values[i])
        q = grid_view_query(spec.to_dict(), preset="tanh", mode="inspect", pixel=click)
        at = _app()
        for k, v in q.items():
            at.query_params[k] = v
        at.run()
        assert not at.exception, at.exception
        verdict = next(m.value for m in at.metric if m.label == "Verdict (replayed)")
        expected = "converged" if grid[i, j] else "diverged"
        assert verdict.endswith(expected), (i, j, verdict)
        assert f"column {j}, row {i}" in _texts(at)


def test_float32_view_too_narrow_switches_to_float64_and_says_so():
    spec = _tiny("tanh", dtype="float32")
    root = (*spec.x_range, *spec.y_range)
    deep = (1.0, 1.0 + 2e-6, 2.0, 2.0 + 2e-6)
    narrow = dataclasses.replace(spec, x_range=deep[:2], y_range=deep[2:])
    assert not tr.float32_resolves(narrow)
    at = _app()
    for k, v in grid_view_query(spec.to_dict(), preset="tanh", path=[root, deep], level=1).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    assert any("float64" in i.value for i in at.info)
    job = runs.status(default_store().key("grid", dataclasses.replace(narrow, dtype="float64")))
    assert job is not None  # the job that was started computes in float64
    runs.cancel(job.id)
    at.button(key="tx_back").click().run()  # the full range resolves in float32: no notice
    assert not any("float64" in i.value for i in at.info)


def test_zoom_video_job_from_the_page():
    spec = _tiny("tanh", seed=4)
    root = (*spec.x_range, *spec.y_range)
    at = _app()
    for k, v in grid_view_query(spec.to_dict(), preset="tanh", path=[root, zoom_view(root, 1, 2, 2)],
                                   level=1).items():
        at.query_params[k] = v
    at.run()
    at.selectbox(key="tx_v_res").set_value(32)
    at.slider(key="tx_v_fpl").set_value(2).run()
    assert not at.exception, at.exception
    at.button(key="tx_v_go").click().run()
    assert not at.exception, at.exception
    video_jobs = [s for s in runs.list_jobs() if s.kind == "zoom_video" and s.spec["grid"]["seed"] == 4]
    assert video_jobs, "pressing the button starts a zoom_video job"
    assert runs.wait(video_jobs[0].id, timeout=180).state == "done"
    at.run()
    assert not at.exception, at.exception
    labels = " ".join(str(b.label) for b in at.get("download_button"))
    assert ".mp4" in labels and ".gif" in labels, labels


def test_grid_view_query_is_canonical():
    spec = _tiny("relu")
    shuffled = dict(sorted(spec.to_dict().items()))  # e.g. a spec read back from sorted JSON
    assert list(grid_view_query(shuffled).items()) == list(grid_view_query(spec.to_dict()).items())
