"""AppTest for the Runs page: lists jobs and stored results newest first, filters, cancels, deletes, clears."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import open_page

import runs
from cache import default_store
from tests import runs_fixture_tasks as fx
from runs import kinds
from tests.runs_fixture_tasks import SleepSpec
from ui import nav, state

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
def made(store):
    """A stored grid-like result with a picture (older), a failed job and a finished job (newest)."""
    grid = "grid-0123456789abcdef0123"
    spec = dataclasses.replace(kinds.KINDS["grid"].spec_class()(), resolution=(16, 16))  # the tanh preset at 16²
    store.put(grid, arrays={"measure": np.ones((4, 4))}, files={"image.png": _png()},
              record={"spec": spec.to_dict(), "created": time.time() - 60, "elapsed_s": 2.0})
    failed = runs.submit("sleep", SleepSpec(steps=2, step_s=0.0, fail_at=0))
    assert runs.wait(failed, 30).state == "failed"
    done = runs.submit("sleep", SleepSpec(steps=1, step_s=0.0, tag="done"))
    assert runs.wait(done, 30).state == "done"
    return {"grid": grid, "failed": failed, "done": done}


def _open() -> AppTest:
    at = open_page(RUNS_PAGE).run()
    assert not at.exception, at.exception
    return at


def _row_ids(at: AppTest) -> list[str]:
    return [m.value.rsplit("`", 2)[1] for m in at.markdown if m.value.count("`") >= 2 and " · " in m.value]


def test_lists_every_run_newest_first_with_status(made):
    at = _open()
    assert _row_ids(at) == [made["done"], made["failed"], made["grid"]]
    assert [m.value for m in at.metric][:2] == ["3", "0"]
    assert [e.value for e in at.error] == ["RuntimeError: boom at step 0"]
    captions = " | ".join(c.value for c in at.caption)
    assert "preset **tanh**" in captions and "resolution **16×16 px**" in captions and "took 2 s" in captions
    assert "steps **1**" in captions  # a kind without a list of key fields shows its first fields
    # a thumbnail for every stored result: the grid's image.png and the sleep kind's own picture (fx.thumbnail);
    # the failed job has no result, so no picture
    assert len(at.get("image")) == 2
    downloads = [el for el in at.get("download_button")]
    assert len(downloads) == 2  # one per stored result (done job and grid), none for the failed job


def test_delete_removes_record_and_files(made, store):
    at = _open()
    at.button(key=f"runs-del-{made['grid']}").click().run()
    at.button(key=f"runs-del-yes-{made['grid']}").click().run()
    assert not at.exception
    assert not store.has(made["grid"])
    assert made["grid"] not in _row_ids(at)
    at.button(key=f"runs-del-{made['done']}").click().run()
    at.button(key=f"runs-del-yes-{made['done']}").click().run()
    assert not store.has(made["done"]) and runs.status(made["done"]) is None
    assert _row_ids(at) == [made["failed"]]


def test_delete_asks_first(made, store):
    """One click on Delete only asks; "Keep it" keeps the run; "Yes, delete" removes it."""
    at = _open()
    at.button(key=f"runs-del-{made['grid']}").click().run()
    assert not at.exception
    assert store.has(made["grid"]) and made["grid"] in _row_ids(at)
    assert any("Delete this run?" in w.value for w in at.warning)
    at.button(key=f"runs-del-no-{made['grid']}").click().run()
    assert store.has(made["grid"]) and not any("Delete this run?" in w.value for w in at.warning)
    at.button(key=f"runs-del-{made['grid']}").click().run()
    at.button(key=f"runs-del-yes-{made['grid']}").click().run()
    assert not store.has(made["grid"]) and made["grid"] not in _row_ids(at)
    assert _row_ids(at) == [made["done"], made["failed"]]


def test_filters_live_in_the_url(made):
    at = _open()
    at.multiselect(key="runs-state").set_value(["failed"]).run()
    assert _row_ids(at) == [made["failed"]]
    assert at.query_params["state"] == "failed"
    at.multiselect(key="runs-state").set_value([]).run()
    at.multiselect(key="runs-kind").set_value(["grid"]).run()
    assert _row_ids(at) == [made["grid"]]


def test_clear_all_needs_confirmation(made, store):
    at = _open()
    at.button(key="runs-clear").click().run()
    assert any("Delete all 3 runs" in w.value for w in at.warning)
    at.button(key="runs-clear-no").click().run()
    assert len(_row_ids(at)) == 3 and store.has(made["grid"])
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


def test_reopen_link_for_every_kind(store):
    """Each kind's finished run links to the page that shows it (ui.nav.REOPEN): a grid and a zoom video open the
    explorer on the grid's own spec as a link (ui.state.spec_query); training runs open their lab with ?run=."""
    grid_cls = kinds.KINDS["grid"].spec_class()
    full = grid_cls()
    (x0, x1), (y0, y1) = full.x_range, full.y_range
    view = dataclasses.replace(full, x_range=(x0, (x0 + x1) / 2), y_range=(y0, (y0 + y1) / 2))
    video = kinds.KINDS["zoom_video"].spec_class()(grid=view, full_x_range=full.x_range, full_y_range=full.y_range)
    ids = {}
    for kind, spec in (("grid", full.to_dict()), ("zoom_video", video.to_dict()),
                       ("fractalnet_train", {"variant": "small"}), ("kron_train", {"task": "digits"})):
        ids[kind] = f"{kind}-0123456789abcdef{len(ids):04d}"
        store.put(ids[kind], files={"summary.json": "{}"}, record={"spec": spec})
    at = _open()
    links = {el.proto.label: el.proto for el in at.get("page_link")}
    expected = {
        "Open in the explorer": ("Trainability_Explorer", urlencode(state.spec_query(grid_cls, full.to_dict()))),
        "Open its view in the explorer": ("Trainability_Explorer",
                                          urlencode(state.spec_query(grid_cls, view.to_dict()))),
        "Open in the FractalNet lab": ("FractalNet_Lab", f"run={ids['fractalnet_train']}"),
        "Open in the Kronecker lab": ("Kronecker_Lab", f"run={ids['kron_train']}"),
    }
    for label, (page, query) in expected.items():
        assert label in links, f"no {label!r} link among {sorted(links)}"
        assert (links[label].page, links[label].query_string) == (page, query)
    assert expected["Open in the explorer"][1] != expected["Open its view in the explorer"][1]
    assert set(nav.REOPEN) == set(kinds.BUILT_IN)  # no kind is left without a page that re-opens it


def _name_and_note(at: AppTest, run_id: str, name: str, note: str) -> AppTest:
    at.text_input(key=f"runs-name-{run_id}").input(name)
    at.text_area(key=f"runs-note-{run_id}").input(note)
    return at.button(key=f"runs-note-save-{run_id}").click().run()


def test_names_and_notes_are_kept_with_the_run_not_in_its_spec(made, store):
    """A name and a note typed on the page show in the row, survive a reload (a new session), and change
    neither the run's id nor its stored spec: asking for the same computation still finds it."""
    record_before = store.record(made["done"])
    at = _name_and_note(_open(), made["done"], "baseline *run*", "first try:\nsee `loss`")
    assert not at.exception, at.exception
    assert any(m.value.startswith("**baseline \\*run\\*** · Sleep test") for m in at.markdown)  # shown as typed
    at = _open()  # a reload: a new session reads it back from disk
    assert any(m.value.startswith("**baseline \\*run\\*** · ") and m.value.endswith(f"`{made['done']}`")
               for m in at.markdown)
    assert any("first try" in c.value and "see \\`loss\\`" in c.value for c in at.caption)
    assert at.text_input(key=f"runs-name-{made['done']}").value == "baseline *run*"
    assert store.record(made["done"])["spec"] == record_before["spec"]
    assert runs.submit("sleep", SleepSpec(steps=1, step_s=0.0, tag="done")) == made["done"]
    assert _row_ids(at) == [made["done"], made["failed"], made["grid"]]


def test_names_are_capped_and_a_bad_one_is_refused_by_name(made):
    from runs import notes

    at = _name_and_note(_open(), made["grid"], "ok", "")
    at.text_input(key=f"runs-name-{made['grid']}").set_value("x" * 200)  # past max_chars: the widget cuts it
    at.button(key=f"runs-note-save-{made['grid']}").click().run()
    assert not at.exception
    assert notes.read(made["grid"]).name == "x" * notes.MAX_NAME
    at.text_input(key=f"runs-name-{made['grid']}").set_value("two\nlines")  # what only a crafted client sends
    at.button(key=f"runs-note-save-{made['grid']}").click().run()
    assert not at.exception
    assert any(e.value.startswith("name: must be one line") for e in at.error)
    assert notes.read(made["grid"]).name == "x" * notes.MAX_NAME  # a refused name leaves the stored one


def test_compare_settings_of_picked_runs_differing_first(store):
    fx.register()
    a = runs.submit("sleep", SleepSpec(steps=2, step_s=0.0, tag="a"))
    b = runs.submit("sleep", SleepSpec(steps=3, step_s=0.0, scale=2.0, tag="a"))
    assert runs.wait(a, 30).state == runs.wait(b, 30).state == "done"
    at = _open()
    at.multiselect(key="runs-pick").set_value([a, b]).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table.index[:2]) == ["steps", "scale"]  # the settings that differ, in the spec's order, first
    assert table["differs"].tolist() == [True, True] + [False] * (len(table) - 2)
    assert table.loc["steps"].tolist()[1:] == ["2", "3"] and table.loc["tag"].tolist()[1:] == ["a", "a"]
    assert {"step_s", "fail_at", "tag"} <= set(table.index[2:])
    assert any("2 of" in c.value and "settings differ" in c.value for c in at.caption)


def test_my_files_use_material_icons_not_emoji():
    """Emoji render as empty boxes in Debian's Chromium: the Runs page and home use :material/…: icons."""
    files = [ROOT / "app.py", ROOT / RUNS_PAGE, *sorted((ROOT / "ui" / "runs").glob("*.py")), ROOT / "ui" / "home.py"]
    for path in files:
        text = path.read_text(encoding="utf-8")
        odd = sorted({c for c in text if ord(c) >= 0x2190 and c not in "→…−×⊗"})
        assert not odd, f"{path.name}: {odd}"
