"""AppTest for the Runs page: lists jobs and stored results newest first, filters, cancels, deletes, clears."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import runs
from cache import default_store
from tests import runs_fixture_tasks as fx
from tests.runs_fixture_tasks import SleepSpec

ROOT = Path(__file__).resolve().parents[2]
RUNS_PAGE = "pages/4_Runs.py"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.arange(16 * 16 * 3) % 255).astype(np.uint8).reshape(16, 16, 3)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "store"))
    monkeypatch.setenv("FRACTAL_LAB_CANCEL_GRACE_S", "1")
    fx.register()
    yield default_store()
    for st in runs.list_jobs():
        if st.active:
            runs.delete(st.id)


@pytest.fixture
def runs(store):
    """A stored grid-like result with a picture (older), a failed job and a finished job (newest)."""
    grid = "grid-0123456789abcdef0123"
    store.put(grid, arrays={"measure": np.ones((4, 4))}, files={"image.png": _png()},
              record={"spec": {"preset": "tanh", "resolution": 16}, "created": time.time() - 60, "elapsed_s": 2.0})
    failed = runs.submit("sleep", SleepSpec(steps=2, step_s=0.0, fail_at=0))
    assert runs.wait(failed, 30).state == "failed"
    done = runs.submit("sleep", SleepSpec(steps=1, step_s=0.0, tag="done"))
    assert runs.wait(done, 30).state == "done"
    return {"grid": grid, "failed": failed, "done": done}


def _open(app: str = str(ROOT / "app.py")) -> AppTest:
    at = AppTest.from_file(app, default_timeout=60).run()
    at.switch_page(RUNS_PAGE).run()
    assert not at.exception, at.exception
    return at


def _row_ids(at: AppTest) -> list[str]:
    return [m.value.rsplit("`", 2)[1] for m in at.markdown if m.value.count("`") >= 2 and " · " in m.value]


def test_lists_every_run_newest_first_with_status(runs):
    at = _open()
    assert _row_ids(at) == [runs["done"], runs["failed"], runs["grid"]]
    assert [m.value for m in at.metric][:2] == ["3", "0"]
    assert [e.value for e in at.error] == ["RuntimeError: boom at step 0"]
    captions = " | ".join(c.value for c in at.caption)
    assert "preset=tanh, resolution=16" in captions and "took 2 s" in captions
    assert "steps=1" in captions
    assert len(at.get("image")) == 1  # the grid's image.png is its thumbnail; the sleep runs have none
    downloads = [el for el in at.get("download_button")]
    assert len(downloads) == 2  # one per stored result (done job and grid), none for the failed job


def test_delete_removes_record_and_files(runs, store):
    at = _open()
    at.button(key=f"runs-del-{runs['grid']}").click().run()
    assert not at.exception
    assert not store.has(runs["grid"])
    assert runs["grid"] not in _row_ids(at)
    at.button(key=f"runs-del-{runs['done']}").click().run()
    assert not store.has(runs["done"]) and runs.status(runs["done"]) is None
    assert _row_ids(at) == [runs["failed"]]


def test_filters_live_in_the_url(runs):
    at = _open()
    at.multiselect(key="runs-state").set_value(["failed"]).run()
    assert _row_ids(at) == [runs["failed"]]
    assert at.query_params["state"] == "failed"
    at.multiselect(key="runs-state").set_value([]).run()
    at.multiselect(key="runs-kind").set_value(["grid"]).run()
    assert _row_ids(at) == [runs["grid"]]


def test_clear_all_needs_confirmation(runs, store):
    at = _open()
    at.button(key="runs-clear").click().run()
    assert any("Delete all 3 runs" in w.value for w in at.warning)
    at.button(key="runs-clear-no").click().run()
    assert len(_row_ids(at)) == 3 and store.has(runs["grid"])
    at.button(key="runs-clear").click().run()
    at.button(key="runs-clear-yes").click().run()
    assert not at.exception
    assert _row_ids(at) == [] and store.entries() == [] and runs.list_runs() == []
    assert any("No runs yet" in i.value for i in at.info)


def test_cancel_a_running_job(store):
    job = runs.submit("sleep", SleepSpec(steps=300, step_s=0.1, tag="long"))
    deadline = time.time() + 30
    while not runs.events(job) and time.time() < deadline:
        time.sleep(0.05)
    at = _open()
    assert [m.value for m in at.metric][1] == "1"
    at.button(key=f"runs-cancel-{job}").click().run()
    assert not at.exception
    assert runs.wait(job, 20).state == "cancelled"
    at.run()
    assert any("cancelled" in m.value for m in at.markdown)


def test_reopen_links(tmp_path, store):
    """A finished FractalNet run links to its lab with ?run=<id>; a grid links to the explorer with the view's
    query parameters (ui.grid_view_query). Run against a copy of the app whose other pages are placeholders, so
    the test does not depend on those pages' own state."""
    app = tmp_path / "app"
    (app / "pages").mkdir(parents=True)
    shutil.copy(ROOT / "app.py", app / "app.py")
    shutil.copy(ROOT / RUNS_PAGE, app / RUNS_PAGE)
    for page in ("1_Trainability_Explorer.py", "2_FractalNet_Lab.py"):
        (app / "pages" / page).write_text("import streamlit as st\nst.write(st.query_params.to_dict())\n")
    train = "fractalnet_train-0123456789abcdef0123"
    store.put(train, files={"summary.json": "{}"}, record={"spec": {"variant": "small"}})
    grid_spec = None
    try:
        import ui
        from engine.trainability import GridSpec

        if hasattr(ui, "grid_view_query"):
            grid_spec = GridSpec()
    except ImportError:
        pass
    if grid_spec is not None:
        store.put(store.key("grid", grid_spec), files={"image.png": _png()}, record={"spec": grid_spec.to_dict()})
    at = _open(str(app / "app.py"))
    links = {el.proto.label: el.proto for el in at.get("page_link")}
    lab = links["Open in the FractalNet lab"]
    assert lab.page == "FractalNet_Lab" and lab.query_string == f"run={train}"
    if grid_spec is None:
        pytest.skip("ui.grid_view_query or engine.trainability.GridSpec not available yet: grid link not checked")
    explorer = links["🌀 Open in the explorer"]
    assert explorer.page == "Trainability_Explorer"
    assert explorer.query_string == urlencode(ui.grid_view_query(grid_spec.to_dict()))
