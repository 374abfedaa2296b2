"""How the Trainability Explorer reacts to the user (issues 13 and 15): one job per view (no preview job beside
it), one selection event = one zoom level, no compute above the cost limit without a click, a resolution change stops
the jobs it replaces, "Zoom out" keeps the zoom path, the paper's estimator says "—" when it means nothing, and
Material icons instead of emoji. Grids are tiny so real jobs finish in seconds on a shared 2-core machine.
"""

from __future__ import annotations

import dataclasses
import unicodedata

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import runs
from cache import default_store
from engine import trainability as tr
from engine.trainability import cost
from engine.trainability.dimension import box_counting_dimension
from engine.trainability.views import zoom_view
from tests.pages.conftest import open_page
from ui.trainability.dimension import PAPER_MIN_BOXES, paper_problem
from ui.trainability.link import grid_view_query

PAGE_FILE = "pages/1_Trainability_Explorer.py"


pytestmark = pytest.mark.usefixtures("stop_leftover_jobs")


def _tiny(preset: str = "tanh", res: int = 16, **over) -> tr.GridSpec:
    over.setdefault("steps", 40)
    return dataclasses.replace(tr.PRESETS[preset].spec, resolution=(res, res), **over)


def _key(spec: tr.GridSpec) -> str:
    return default_store().key("grid", spec)


def _open(spec: tr.GridSpec, preset: str = "tanh", **kwargs) -> AppTest:
    at = open_page(PAGE_FILE, **grid_view_query(spec.to_dict(), preset=preset, **kwargs))
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


# ------------------------------------------------------------------------------- one job per view


def _grid_jobs() -> set[str]:
    return {s.id for s in runs.list_jobs() if s.kind == "grid"}


@pytest.mark.parametrize("costly", [False, True])
def test_compute_button_submits_one_job_for_the_view(costly, monkeypatch):
    """"Compute this view" on a 48 x 48 view (which used to get a 32 x 32 preview job first): exactly one grid job
    is submitted, the view's own, and the page draws its result when it is done. A view above the cost limit
    (``costly``) follows the click the same way."""
    if costly:
        monkeypatch.setattr(cost, "AUTO_COMPUTE_LIMIT_S", 0.0)
    at = open_page(PAGE_FILE).run()
    at.selectbox(key="tx_res").set_value((48, 48)).run()
    at.number_input(key="tx_f_steps").set_value(40)
    at.number_input(key="tx_f_seed").set_value(11 + costly)
    at.button(key="tx_apply").click().run()
    spec = _tiny(res=48, seed=11 + costly)
    before = _grid_jobs()
    assert runs.status(_key(spec)) is None
    at.button(key="tx_compute").click().run()
    assert not at.exception, at.exception
    assert _grid_jobs() - before == {_key(spec)}, "one job, the view's own"
    assert runs.wait(_key(spec), timeout=120).state == "done"
    at.run()
    assert not at.exception, at.exception
    assert _grid_jobs() - before == {_key(spec)}, "and no second job after it"
    assert any(m.label.startswith("Converged fraction") for m in at.metric)


# ------------------------------------------------------------------------------- one selection, one level


def _selection_script():
    import streamlit as st

    from ui.trainability import navigation, session

    state = session.load()
    click = {"selection": {"points": [{"x": 1.0, "y": 2.0, "point_index": 7}], "box": [], "lasso": []}}
    other = {"selection": {"points": [{"x": 1.1, "y": 2.1, "point_index": 9}], "box": [], "lasso": []}}
    levels = []

    def deliver(chart_key, event):
        st.session_state[chart_key] = event
        navigation.on_map_select(chart_key)
        levels.append(session.get()["level"])

    first = session.map_key(state)
    deliver(first, click)  # the click
    deliver(first, click)  # the same event delivered again (a rerun racing the click)
    deliver(session.map_key(state), click)  # the same selection reported by the next level's chart
    deliver(session.map_key(state), other)  # a new click on the new chart
    navigation._set_level(0)  # reset, then the very first click again: a new action, so it zooms
    deliver(session.map_key(state), click)
    st.session_state["levels"] = levels
    st.session_state["path_len"] = len(session.get()["path"])


def test_one_selection_event_zooms_one_level():
    at = AppTest.from_function(_selection_script, default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.session_state["levels"] == [1, 1, 1, 2, 1], at.session_state["levels"]
    assert at.session_state["path_len"] == 2


# ------------------------------------------------------------------------------- cost limit and resolution


def test_preset_and_link_never_start_above_the_cost_limit(monkeypatch):
    spec = _tiny(seed=13)
    at = _open(spec)
    job = runs.status(_key(spec))
    assert job is not None  # below the limit, a link computes what it names
    monkeypatch.setattr(cost, "AUTO_COMPUTE_LIMIT_S", 0.0)  # now every view costs more than the limit
    at.selectbox(key="tx_preset").set_value("relu").run()
    assert not at.exception, at.exception
    relu = tr.PRESETS["relu"].spec
    assert runs.status(_key(relu)) is None and not any(s.spec.get("activation") == "relu"
                                                       for s in runs.list_jobs() if s.kind == "grid")
    assert "was not started" in _texts(at)
    at = _open(_tiny(seed=14))  # a link above the limit
    assert runs.status(_key(_tiny(seed=14))) is None
    assert "was not started" in _texts(at)
    at.button(key="tx_compute").click().run()  # a click computes it whatever it costs
    assert runs.status(_key(_tiny(seed=14))) is not None


def test_changing_the_resolution_stops_the_replaced_jobs():
    """A costly view's one job is running; another resolution replaces the view: that job stops (no other job of
    the old view is left running) and the new view's job starts."""
    spec = _tiny(res=64, steps=5000, seed=12)
    at = _open(spec)
    job = runs.status(_key(spec))
    assert job is not None and job.active, job
    at.selectbox(key="tx_res").set_value((48, 48)).run()
    assert not at.exception, at.exception
    assert runs.wait(_key(spec), timeout=60).state == "cancelled"
    new = runs.status(_key(dataclasses.replace(spec, resolution=(48, 48))))
    assert new is not None and new.active, new  # the new view computes
    at.selectbox(key="tx_res").set_value((24, 24)).run()
    assert not at.exception, at.exception
    assert runs.wait(new.id, timeout=60).state == "cancelled"
    small = _key(dataclasses.replace(spec, resolution=(24, 24)))
    assert runs.status(small) is not None
    others = [s.id for s in runs.list_jobs() if s.kind == "grid" and s.active and (s.spec or {}).get("seed") == 12]
    assert set(others) <= {small}, others  # of the three views, only the current one may still compute


# ------------------------------------------------------------------------------- zoom path, dimension, icons


def test_zoom_out_at_level_0_keeps_the_zoom_path():
    spec = _tiny(seed=15)
    root = (*spec.x_range, *spec.y_range)
    lvl1 = zoom_view(root, 1.0, 2.0, 2)
    path = [root, lvl1, zoom_view(lvl1, 1.1, 2.1, 2)]
    at = _open(spec, path=path, level=0)
    assert at.button(key="tx_out").disabled
    assert len(at.session_state["tx"]["path"]) == 3 and at.query_params["path"] == grid_view_query(
        spec.to_dict(), preset="tanh", path=path)["path"]
    at.button(key="tx_crumb_1").click().run()
    assert not at.button(key="tx_out").disabled  # from level 1, zooming out is a view of its own


def test_paper_estimator_shows_a_dash_on_a_small_map():
    spec = _tiny(res=24, steps=100, seed=16)
    job_id = runs.submit("grid", spec)
    assert runs.wait(job_id, timeout=120).state == "done"
    est = box_counting_dimension(np.load(runs.result_dir(job_id) / "measure.npy"))
    assert max(est.paper_counts, default=0) < PAPER_MIN_BOXES  # a 24-px map: a handful of 10-px boxes
    at = _open(spec)
    value = next(m.value for m in at.metric if m.label.startswith("Paper's estimator"))
    assert value == "—", value
    assert "Paper's estimator: — because" in _texts(at)


def test_paper_problem_accepts_a_boundary_with_enough_boxes():
    yy, xx = np.mgrid[0:256, 0:256]
    disk = (xx - 128.0) ** 2 + (yy - 128.0) ** 2 - 90.0 ** 2  # a circle: plenty of 10-px boxes, dimension 1
    est = box_counting_dimension(disk)
    assert paper_problem(est) is None and abs(est.paper_dimension - 1) < 0.3
    assert "no boundary" in paper_problem(box_counting_dimension(-np.ones((64, 64))))


def _symbols(text: str) -> set[str]:
    """Pictographs and arrows (Unicode 'other symbols'), which Debian's Chromium may draw as empty boxes."""
    return {ch for ch in str(text) if unicodedata.category(ch) == "So"}


def test_explorer_labels_use_material_icons_not_symbols():
    spec = _tiny(seed=17)
    root = (*spec.x_range, *spec.y_range)
    job_id = runs.submit("grid", spec)
    assert runs.wait(job_id, timeout=120).state == "done"
    at = _open(spec, path=[root, zoom_view(root, 1.0, 2.0, 2)], level=0, mode="inspect",
               pixel=(float(spec.x_values[3]), float(spec.y_values[4])))
    labels = [b.label for b in at.button] + [str(b.label) for b in at.get("download_button")]
    labels += [m.label for m in at.metric] + [m.value for m in at.metric]
    found = {label: _symbols(label) for label in labels if _symbols(label)}
    assert not found, found
