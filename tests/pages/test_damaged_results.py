"""Damaged stored results (issue 12, item 12): every page that reads a result says "This stored result is damaged
(…)" with a Recompute button that deletes the entry and submits the same spec again; the Runs page still draws
every other row.

Each kind's result is computed once for real (tiny specs) and kept aside; every case restores that copy as a fresh
entry, damages one file in one of five ways, and opens the page as a fresh server would (no in-memory caches).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import open_page

import runs
from cache import default_store
from engine import trainability as tr
from engine.trainability.views import zoom_view
from ui.trainability.link import grid_view_query

EXPLORER = "pages/1_Trainability_Explorer.py"
FRACTALNET = "pages/2_FractalNet_Lab.py"
KRONECKER = "pages/3_Kronecker_Lab.py"
RUNS = "pages/4_Runs.py"
TIMEOUT = 240


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bitflip(path: Path) -> None:
    """One bit of the data near the end (past any header): the file still parses, its numbers are wrong."""
    data = bytearray(path.read_bytes())
    data[len(data) - 9] ^= 0x01
    path.write_bytes(bytes(data))


def _missing(path: Path) -> None:
    path.unlink()


def _garbage(path: Path) -> None:
    path.write_bytes(b'{"not json, not csv\x00\xff')


WAYS = {"truncated": _truncate, "bit-flipped": _bitflip, "missing": _missing, "unparsable": _garbage}
CASES = {  # kind -> (way, file) x 5: a truncated and a bit-flipped binary, a missing file, bad JSON/CSV, a picture
    "grid": [("truncated", "measure.npy"), ("bit-flipped", "measure.npy"), ("missing", "converged.npy"),
             ("unparsable", "dimension.json"), ("truncated", "image.png")],
    "fractalnet_train": [("truncated", "model.safetensors"), ("bit-flipped", "model.safetensors"),
                         ("missing", "summary.json"), ("unparsable", "metrics.csv"), ("truncated", "summary.json")],
    "kron_train": [("truncated", "checkpoint_kron_tied.safetensors"),
                   ("bit-flipped", "checkpoint_kron_tied.safetensors"), ("missing", "results.csv"),
                   ("unparsable", "summary.json"), ("truncated", "curves.csv")],
    "zoom_video": [("truncated", "video.mp4"), ("bit-flipped", "video.gif"), ("missing", "preview.png"),
                   ("truncated", "preview.png")],
}


def _ids(kind: str) -> list[str]:
    return [f"{way} {name}" for way, name in CASES[kind]]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FRACTAL_LAB_CACHE", str(tmp_path_factory.mktemp("damaged-store")))
    yield default_store()
    for s in runs.list_jobs():
        if s.active:
            runs.delete(s.id)
    mp.undo()


@dataclasses.dataclass
class Stored:
    key: str
    spec: object
    pristine: Path

    def damaged(self, store, way: str, name: str) -> None:
        """A fresh entry from the pristine copy (its job and any recompute in flight are gone) with ``name``
        damaged; no cache of this process remembers the entry (as in a server started after the damage)."""
        runs.delete(self.key)
        shutil.copytree(self.pristine, store.path(self.key, touch=False), copy_function=shutil.copy)
        target = store.path(self.key, touch=False) / name
        assert target.is_file(), sorted(p.name for p in target.parent.iterdir())
        WAYS[way](target)
        st.cache_data.clear()
        st.cache_resource.clear()


def _compute(store, tmp_path_factory, kind: str, spec) -> Stored:
    key = runs.submit(kind, spec)
    status = runs.wait(key, TIMEOUT)
    assert status.state == "done", status
    pristine = tmp_path_factory.mktemp(f"pristine-{kind}") / key
    shutil.copytree(store.path(key, touch=False), pristine)
    return Stored(key, spec, pristine)


def _tiny_grid(seed: int = 0) -> tr.GridSpec:
    return dataclasses.replace(tr.PRESETS["tanh"].spec, resolution=(16, 16), steps=40, seed=seed)


@pytest.fixture(scope="module")
def grid(store, tmp_path_factory) -> Stored:
    return _compute(store, tmp_path_factory, "grid", _tiny_grid())


@pytest.fixture(scope="module")
def fractalnet(store, tmp_path_factory) -> Stored:
    from engine.fractalnet.train import TrainSpec
    from engine.fractalnet.variants import variant_config

    base = TrainSpec()
    spec = dataclasses.replace(base, epochs=1, max_train=32, max_test=32, batch_size=32, augment=False,
                               model=variant_config("micro", num_classes=base.model.num_classes,
                                                    in_channels=base.model.in_channels))
    return _compute(store, tmp_path_factory, "fractalnet_train", spec)


@pytest.fixture(scope="module")
def kronecker(store, tmp_path_factory) -> Stored:
    from engine.kronecker.spec import PRESETS, KronSpec, KronTrainSpec

    p = PRESETS["two-node"]
    spec = KronTrainSpec(graph=KronSpec(base=[list(r) for r in p.matrix], names=list(p.names), power=1),
                         epochs=1, width=8, batch_size=512, baselines=())
    return _compute(store, tmp_path_factory, "kron_train", spec)


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message[:400] for e in at.exception]


def _damaged_notices(at: AppTest) -> list[str]:
    return [e.value for e in at.error if "stored result is damaged (" in e.value]


def _recompute_resubmits(at: AppTest, button: str, stored: Stored) -> None:
    """The notice and its button are there; a click deletes the entry and submits the same spec again."""
    assert _damaged_notices(at), [e.value for e in at.error]
    assert at.button(key=button).label == "Recompute"
    before = time.time()
    at.button(key=button).click().run()
    _no_exception(at)
    status = runs.status(stored.key)  # the same spec has the same id
    assert status is not None and status.state in ("queued", "running", "done"), status
    assert (status.created or 0) >= before, "a new job, not the damaged entry"


# --------------------------------------------------------------------------------------------- the explorer


@pytest.mark.parametrize("way,name", CASES["grid"], ids=_ids("grid"))
def test_explorer_map(store, grid, way, name):
    grid.damaged(store, way, name)
    at = open_page(EXPLORER, TIMEOUT, **grid_view_query(grid.spec.to_dict(), preset="tanh")).run()
    _no_exception(at)
    _recompute_resubmits(at, "tx_recompute", grid)
    assert runs.wait(grid.key, TIMEOUT).state == "done"
    at.run()  # the recomputed map is drawn, and nothing is damaged any more
    _no_exception(at)
    assert not _damaged_notices(at)
    assert any(m.label.startswith("Converged fraction") for m in at.metric)


def test_explorer_dimension_of_a_damaged_other_level(store, grid):
    """The dimension tab pools every visited level: a damaged one is named and left out, the tab still draws."""
    grid.damaged(store, "truncated", "measure.npy")
    root = (*grid.spec.x_range, *grid.spec.y_range)
    deeper = zoom_view(root, 1.0, 2.0, 2)
    level1 = dataclasses.replace(grid.spec, x_range=deeper[:2], y_range=deeper[2:])
    assert runs.wait(runs.submit("grid", level1), TIMEOUT).state == "done"
    at = open_page(EXPLORER, TIMEOUT, **grid_view_query(grid.spec.to_dict(), preset="tanh", path=[root, deeper],
                                                        level=1)).run()
    _no_exception(at)
    assert any(e.startswith("Level 0: this stored result is damaged (") for e in _damaged_notices(at))
    assert any(m.label == "This view" for m in at.metric)
    at.button(key="tx_dim_recompute_0").click().run()
    _no_exception(at)
    assert runs.status(grid.key).state in ("queued", "running", "done")


@pytest.fixture(scope="module")
def video(store, tmp_path_factory, grid) -> tuple[Stored, dict]:
    """A zoom video rendered from the page (its spec is what the page's widgets make)."""
    root = (*grid.spec.x_range, *grid.spec.y_range)
    query = grid_view_query(grid.spec.to_dict(), preset="tanh", path=[root, zoom_view(root, 1, 2, 2)], level=1)
    at = _video_page(query)
    at.button(key="tx_v_go").click().run()
    _no_exception(at)
    (job,) = [s for s in runs.list_jobs() if s.kind == "zoom_video"]
    assert runs.wait(job.id, TIMEOUT).state == "done"
    pristine = tmp_path_factory.mktemp("pristine-video") / job.id
    shutil.copytree(store.path(job.id, touch=False), pristine)
    return Stored(job.id, None, pristine), query


def _video_page(query: dict) -> AppTest:
    at = open_page(EXPLORER, TIMEOUT, **query).run()
    at.selectbox(key="tx_v_res").set_value(32)
    at.slider(key="tx_v_fpl").set_value(2).run()
    _no_exception(at)
    return at


@pytest.mark.parametrize("way,name", CASES["zoom_video"], ids=_ids("zoom_video"))
def test_explorer_zoom_video(store, video, way, name):
    stored, query = video
    stored.damaged(store, way, name)
    at = _video_page(query)
    _recompute_resubmits(at, "tx_v_recompute", stored)


# --------------------------------------------------------------------------------------------- the labs


@pytest.mark.parametrize("way,name", CASES["fractalnet_train"], ids=_ids("fractalnet_train"))
def test_fractalnet_results(store, fractalnet, way, name):
    fractalnet.damaged(store, way, name)
    at = open_page(FRACTALNET, TIMEOUT, run=fractalnet.key).run()
    _no_exception(at)
    button = next(b.key for b in at.button if b.key in ("fn_recompute", "fn_recompute_model"))
    _recompute_resubmits(at, button, fractalnet)
    assert at.session_state["fn_run"] == fractalnet.key  # the page follows the new job


@pytest.mark.parametrize("way,name", CASES["kron_train"], ids=_ids("kron_train"))
def test_kronecker_train_tab(store, kronecker, way, name):
    kronecker.damaged(store, way, name)
    at = open_page(KRONECKER, TIMEOUT, run=kronecker.key).run()
    _no_exception(at)
    _recompute_resubmits(at, "kt_recompute", kronecker)


# --------------------------------------------------------------------------------------------- the Runs page


def _row_ids(at: AppTest) -> list[str]:
    return [m.value.rsplit("`", 2)[1] for m in at.markdown if m.value.count("`") >= 2 and " · " in m.value]


@pytest.mark.parametrize("way,name", CASES["grid"], ids=_ids("grid"))
def test_runs_page_rows(store, grid, fractalnet, kronecker, way, name):
    other = runs.submit("grid", _tiny_grid(seed=1))  # an intact row beside the damaged one
    assert runs.wait(other, TIMEOUT).state == "done"
    grid.damaged(store, way, name)
    at = open_page(RUNS, TIMEOUT).run()
    _no_exception(at)
    rows = _row_ids(at)
    assert {grid.key, other, fractalnet.key, kronecker.key} <= set(rows), rows
    assert len(_damaged_notices(at)) == 1, _damaged_notices(at)
    assert len(at.get("image")) >= 3  # every intact stored result still has its picture
    _recompute_resubmits(at, f"runs-recompute-{grid.key}", grid)
