"""The Runs page on real results of every built-in kind (tiny ones, computed once for the module): a picture,
the fields that tell runs apart, a link that opens the run on its page, and Resume for a stopped training."""

from __future__ import annotations

import dataclasses
import io
import shutil
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import runs
from cache import default_store
from engine.errors import Cancelled
from engine.fractalnet import results as fn_results
from engine.fractalnet.checkpoint import resume_point
from engine.fractalnet.train import TrainSpec
from engine.fractalnet.variants import variant_config
from engine.kronecker import results as kr_results
from engine.kronecker.spec import KronSpec, KronTrainSpec
from engine.trainability import GridSpec
from engine.trainability import results as tr_results
from engine.trainability.video import VideoSpec
from engine.trainability.video import run_to_dir as video_to_dir
from runs import kinds, records
from tests.pages.conftest import open_page
from ui import nav
from ui.trainability import session

RUNS_PAGE = "pages/4_Runs.py"
SMALL_VIEW = dict(x_range=(1.0, 1.5625), y_range=(0.5, 1.0625))


def _tiny_training(epochs: int = 1) -> TrainSpec:
    return TrainSpec(model=variant_config("micro"), max_train=64, max_test=32, epochs=epochs, batch_size=32,
                     warmup_epochs=0.5, bn_calibration=32)


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    """{kind: (spec, result folder)} for the four built-in kinds, and a FractalNet run cancelled at step 3 of 4
    (its working folder, as the worker keeps it in ``partial/``)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        grid = dataclasses.replace(GridSpec(), resolution=(8, 8), steps=20)
        out["grid"] = (grid, tmp_path_factory.mktemp("grid"))
        tr_results.run_to_dir(grid, out["grid"][1])
        video = VideoSpec(grid=dataclasses.replace(GridSpec(), resolution=(16, 16), steps=20, **SMALL_VIEW),
                          full_x_range=(0.0, 2.25), full_y_range=(-0.5, 1.75), resolution=16, upscale=1,
                          frames_per_level=2, fps=5, formats=("gif",))
        out["zoom_video"] = (video, tmp_path_factory.mktemp("video"))
        video_to_dir(video, out["zoom_video"][1])
        out["fractalnet_train"] = (_tiny_training(), tmp_path_factory.mktemp("fractalnet"))
        fn_results.run_to_dir(out["fractalnet_train"][0], out["fractalnet_train"][1], threads=1)
        kron = KronTrainSpec(graph=KronSpec(base=((1, 0), (1, 1)), names=("a", "b"), power=2), width=8, epochs=1,
                             batch_size=512, baselines=("sequential",), task="digits")
        out["kron_train"] = (kron, tmp_path_factory.mktemp("kron"))
        kr_results.run_to_dir(kron, out["kron_train"][1])
        stopped, cancel = _tiny_training(epochs=2), threading.Event()  # 2 steps an epoch: cancelled at step 3 of 4

        def progress(_fraction, info):
            if info.get("kind") == "step" and info.get("step", 0) >= 3:
                cancel.set()

        partial = tmp_path_factory.mktemp("partial")
        with pytest.raises(Cancelled):
            fn_results.run_to_dir(stopped, partial, progress=progress, cancel=cancel, threads=1)
        assert resume_point(partial)["step"] == 3
        out["stopped"] = (stopped, partial)
    finally:
        torch.set_num_threads(old)
    return out


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "store"))
    monkeypatch.setenv("FRACTAL_LAB_CANCEL_GRACE_S", "1")
    yield default_store()
    for st in runs.list_jobs():
        if st.active:
            runs.delete(st.id)


@pytest.fixture
def stored(store, computed):
    """The four results committed to the store as a worker commits them; {kind: (id, spec)}."""
    ids = {}
    for i, kind in enumerate(("grid", "zoom_video", "fractalnet_train", "kron_train")):
        spec, folder = computed[kind]
        key = store.key(kind, spec)
        store.commit(key, folder, {"kind": kind, "spec": spec.to_dict(), "created": time.time() - 10 + i,
                                   "elapsed_s": 1.0})
        ids[kind] = (key, spec)
    return ids


def stopped_job(store, computed, state: str = "cancelled", message: str = "cancelled", with_partial: bool = True,
                kind: str = "fractalnet_train") -> str:
    """A job record as the worker leaves a stopped training: final state, its working folder kept as partial/."""
    spec, partial = computed["stopped"]
    key = store.key(kind, spec)
    jd = records.job_dir(store, key)
    jd.mkdir(parents=True, exist_ok=True)
    known = kinds.KINDS[kind]
    now = time.time()
    records.write(jd, {"id": key, "kind": kind, "spec": spec.to_dict(), "extra": "", "spec_class": "TrainSpec",
                       "task": {"spec": known.spec, "task": known.task}, "resume": False, "state": state,
                       "fraction": 0.75, "message": message, "info": None, "created": now, "started": now,
                       "finished": now, "pid": None, "pid_start": None, "out_dir": None})
    if with_partial:
        shutil.copytree(partial, jd / "partial")
    return key


def _open() -> AppTest:
    at = open_page(RUNS_PAGE).run()
    assert not at.exception, at.exception
    return at


def _row(at: AppTest, run_id: str):
    rows = [b for b in at.main.children.values() if getattr(b, "key", None) == f"run-{run_id}"]
    assert len(rows) == 1, f"no row for {run_id}"
    return rows[0]


def test_every_kind_shows_a_real_picture(stored):
    at = _open()
    for kind, (run_id, _) in stored.items():
        assert len(_row(at, run_id).get("image")) == 1, f"{kind}: no picture in its row"
        img = Image.open(io.BytesIO(runs.thumbnail(run_id)))
        img.load()
        pixels = np.asarray(img.convert("RGB"))
        assert min(img.size) >= 16 and pixels.std() > 5, f"{kind}: a blank picture {img.size}"


def test_key_fields_of_every_kind_are_in_its_row(stored):
    """The fields that tell runs of a kind apart are in the row itself, none hidden behind "(+N)"."""
    at = _open()
    expected = {
        "grid": ["preset **custom**", "activation **tanh**", "resolution **8×8 px**", "steps **20**"],
        "zoom_video": ["activation **tanh**", "keyframes **16×16 px**", "frames per level **2**"],
        "fractalnet_train": ["variant **micro**", "dataset **digits**", "epochs **1**", "batch **32**"],
        "kron_train": ["base **a,b (2 nodes)**", "power **2**", "task **digits**", "width **8**"],
    }
    for kind, (run_id, _) in stored.items():
        captions = " | ".join(c.value for c in _row(at, run_id).get("caption"))
        for words in expected[kind]:
            assert words in captions, f"{kind}: {words!r} not in {captions!r}"
        assert "(+" not in captions


def _link(at: AppTest, run_id: str):
    links = _row(at, run_id).get("page_link")
    assert len(links) == 1, f"{run_id}: {len(links)} links"
    return links[0].proto


def _follow(link) -> AppTest:
    page = next(p for p in nav.PAGES if p.url_path == link.page)
    query = dict(pair.split("=", 1) for pair in link.query_string.split("&")) if link.query_string else {}
    from urllib.parse import unquote

    at = open_page(page.file, timeout=120, **{k: unquote(v) for k, v in query.items()}).run()
    assert not at.exception, at.exception
    return at


def test_each_link_opens_its_page_on_the_run(stored, store):
    at = _open()
    grid_id, grid = stored["grid"]
    explorer = _follow(_link(at, grid_id))
    shown, _ = session.view_spec(explorer.session_state["tx"])
    assert store.key("grid", shown) == grid_id  # the explorer is on the stored grid itself: no recompute

    video_id, video = stored["zoom_video"]
    explorer = _follow(_link(at, video_id))
    shown, _ = session.view_spec(explorer.session_state["tx"])
    assert (shown.x_range, shown.y_range) == (video.grid.x_range, video.grid.y_range)
    assert shown.activation == video.grid.activation and shown.steps == video.grid.steps

    fn_id, _ = stored["fractalnet_train"]
    lab = _follow(_link(at, fn_id))
    assert any(m.value.startswith(f"Run `{fn_id}`") for m in lab.markdown)

    kr_id, _ = stored["kron_train"]
    lab = _follow(_link(at, kr_id))
    assert lab.session_state["kt_run"] == kr_id
    assert not [w.value for w in lab.warning if "run" in w.value]


def test_a_stopped_training_has_a_link_too(store, computed):
    stopped = stopped_job(store, computed)
    link = _link(_open(), stopped)
    assert (link.page, link.query_string) == ("FractalNet_Lab", f"run={stopped}")


def test_resume_a_cancelled_training_from_its_checkpoint(store, computed):
    """A cancelled training whose partial/ holds a checkpoint gets "Resume": a new run that continues from step 3
    (the same spec the FractalNet lab's own Resume submits), not one that starts again."""
    stopped = stopped_job(store, computed)
    at = _open()
    button = at.button(key=f"runs-resume-{stopped}")
    assert "step 3" in button.help
    button.click().run()
    assert not at.exception, at.exception
    partial = runs.partial_dir(stopped)
    spec = dataclasses.replace(TrainSpec.from_dict(runs.status(stopped).spec), resume_from=str(partial))
    resumed = store.key("fractalnet_train", spec)
    final = runs.wait(resumed, 180)
    assert final.state == "done", final.message
    assert final.spec["resume_from"] == str(partial)
    steps = [e["step"] for e in runs.events(resumed) if isinstance(e, dict) and e.get("kind") == "step"]
    assert steps and steps[0] == 4, steps  # continued after the checkpoint's step 3
    at.run()
    assert resumed in [m.value.rsplit("`", 2)[1] for m in at.markdown if m.value.count("`") >= 2]


def test_resume_is_offered_only_where_there_is_a_checkpoint(store, computed):
    killed = stopped_job(store, computed, state="failed", message="interrupted: the worker is gone")
    at = _open()
    assert at.button(key=f"runs-resume-{killed}")  # a killed (failed) run with a checkpoint
    runs.delete(killed)
    empty = stopped_job(store, computed, with_partial=False)
    at = _open()
    assert not [b for b in at.button if b.key == f"runs-resume-{empty}"]  # stopped before its first checkpoint
