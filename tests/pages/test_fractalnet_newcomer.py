"""FractalNet lab as a newcomer finds it (issue 13): the checkpoint named by the epoch the curves show, charts on
the page that are the charts downloaded, a compare view like TensorBoard's, metrics that fit, Material icons.

Runs are tiny real trainings (micro model, 64 digits, batch 32: 2 steps an epoch) computed once in this process
and committed to a per-test store as a worker commits them, so no test waits on a background job.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import runs
from cache import default_store
from engine.errors import Cancelled
from engine.fractalnet import charts
from engine.fractalnet import results as fn_results
from engine.fractalnet.checkpoint import resume_point
from engine.fractalnet.train import TrainSpec
from engine.fractalnet.variants import variant_config
from runs import kinds, records
from tests.pages.conftest import ROOT, open_page

PAGE = "pages/2_FractalNet_Lab.py"
KIND = "fractalnet_train"


def _tiny(epochs: int = 2, **kw) -> TrainSpec:
    return TrainSpec(model=variant_config("micro"), max_train=64, max_test=32, epochs=epochs, batch_size=32,
                     warmup_epochs=0.5, bn_calibration=32, **kw)


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    """Two finished runs (different seeds and lengths) and one stopped after the last step of epoch 2 of 3,
    before that epoch's test pass (its checkpoint says ``epoch 1, step 4``)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for name, spec in (("a", _tiny(2)), ("b", _tiny(1, seed=1, lr=0.05))):
            d = tmp_path_factory.mktemp(f"run_{name}")
            fn_results.run_to_dir(spec, d, threads=1)
            out[name] = (spec, d)
        stopped, cancel = _tiny(3, seed=2), threading.Event()

        def progress(_fraction, info):
            if info.get("kind") == "step" and info.get("step", 0) >= 4:
                cancel.set()  # seen before the step's epoch is tested: the next check_cancel stops it there

        partial = tmp_path_factory.mktemp("partial")
        with pytest.raises(Cancelled):
            fn_results.run_to_dir(stopped, partial, progress=progress, cancel=cancel, threads=1)
        out["stopped"] = (stopped, partial)
    finally:
        torch.set_num_threads(old)
    return out


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "store"))
    return default_store()


def _commit(store, spec, folder, age: float = 10.0) -> str:
    key = store.key(KIND, spec)
    store.commit(key, folder, {"kind": KIND, "spec": spec.to_dict(), "created": time.time() - age, "elapsed_s": 1.0})
    return key


def _stopped_job(store, spec, partial) -> str:
    """A job record as the worker leaves a cancelled training: its working folder kept as ``partial/``."""
    key = store.key(KIND, spec)
    jd = records.job_dir(store, key)
    jd.mkdir(parents=True, exist_ok=True)
    known, now = kinds.KINDS[KIND], time.time()
    records.write(jd, {"id": key, "kind": KIND, "spec": spec.to_dict(), "extra": "", "spec_class": "TrainSpec",
                       "task": {"spec": known.spec, "task": known.task}, "resume": False, "state": "cancelled",
                       "fraction": 0.6, "message": "cancelled", "info": None, "created": now, "started": now,
                       "finished": now, "pid": None, "pid_start": None, "out_dir": None})
    shutil.copytree(partial, jd / "partial")
    return key


def _app(**query) -> AppTest:
    at = open_page(PAGE, 120, **query).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _charts(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures by title (their JSON, as the browser receives it)."""
    out = {}
    for el in at.get("plotly_chart"):
        fig = json.loads(el.proto.spec)
        title = fig["layout"].get("title")
        text = title.get("text") if isinstance(title, dict) else title
        if text:  # the block diagram has none
            out[text] = fig
    return out


def _same_drawing(fig: dict, chart: charts.Chart) -> None:
    """The page's figure draws exactly ``chart``: the same series in the same order, colours, widths, dashes."""
    lines = [t for t in fig["data"] if t["type"] == "scatter"]
    assert [t["name"] for t in lines] == [s.name for s in chart.series]
    for t, s in zip(lines, chart.series):
        assert (t["line"]["color"], t["line"]["width"], t["line"].get("dash", "solid"), t.get("opacity", 1.0)) == \
            (s.color, s.width, s.dash, s.opacity), s.name
        assert t["y"] == list(s.y)
    bars = [t for t in fig["data"] if t["type"] == "bar"]
    assert [(t["name"], t["marker"]["color"]) for t in bars] == \
        [(b.name, list(b.colors) if len(b.colors) > 1 else b.colors[0]) for b in chart.bars]


# ------------------------------------------------------------------------------------ 1. the checkpoint's epoch
def test_checkpoint_text_names_the_epoch_the_curves_show():
    """The issue's run: 1,438 digits in batches of 32 are 45 steps an epoch; 450 steps end epoch 10."""
    from ui.fractalnet.run import checkpoint_text

    end = {"epoch": 9, "step": 450, "dataset": {"train": 1438}, "spec": {"batch_size": 32, "epochs": 20}}
    text = checkpoint_text(end)
    assert "step 450" in text and "end of epoch 10 of 20" in text and "epoch 9" not in text
    mid = dict(end, epoch=9, step=430)
    assert "25 of 45 steps into epoch 10 of 20" in checkpoint_text(mid)
    assert "end of epoch 10" in checkpoint_text(dict(end, epoch=10))  # tested too: nothing more to say
    assert "test pass" not in checkpoint_text(dict(end, epoch=10))
    assert checkpoint_text({"step": 7}) == "A checkpoint was kept after step 7."


def test_a_stopped_run_says_where_its_checkpoint_stands(store, computed):
    spec, partial = computed["stopped"]
    point = resume_point(partial)
    assert (point["epoch"], point["step"]) == (1, 4)  # one epoch tested; the 4th step ends epoch 2 (2 a epoch)
    job = _stopped_job(store, spec, partial)
    at = _app(run=job)
    info = [i.value for i in at.info if "checkpoint was kept" in i.value]
    assert len(info) == 1, [i.value for i in at.info]
    assert "step 4, the end of epoch 2 of 3" in info[0], info[0]
    resume = at.button(key="fn_resume")
    assert resume.proto.icon == ":material/resume:" and not re.search(r"[\u2300-\u2bff]", resume.label)


# ------------------------------------------------------------------ 2. the page's charts are the downloads
def test_result_charts_are_drawn_from_the_description_the_downloads_render(store, computed):
    spec, folder = computed["a"]
    rid = _commit(store, spec, folder)
    at = _app(run=rid)
    rd = runs.result_dir(rid)
    want = charts.run_charts(fn_results.read_summary(rd), fn_results.read_metrics(rd))
    drawn = _charts(at)
    for name, chart in want.items():
        assert chart.title in drawn, (name, list(drawn))
        if chart.heat is None:
            _same_drawing(drawn[chart.title], chart)
    loss = want["loss.png"].series
    # the noisy per-step training trace is the thinnest, faint, and drawn first (under every test curve)
    assert loss[0].name == "train (each step)" and loss[-1].name == "test: full net"
    assert loss[0].width < min(s.width for s in loss[1:]) and loss[0].opacity < 1
    heat = drawn[want["confusion.png"].title]["data"][0]
    assert [c for _, c in heat["colorscale"]] == list(charts.CONFUSION_COLORS)
    # every chart is offered as a PNG (rendered on click from the same description) with a Material icon
    buttons = {b.label: b.proto for b in at.get("download_button")}
    for name in want:
        assert name in buttons and buttons[name].icon == ":material/download:", sorted(buttons)
        assert buttons[name].deferred_file_id  # rendered from the chart object when clicked


# -------------------------------------------------------------------------------- 3. comparing runs
def test_compare_overlays_runs_with_smoothing_log_axis_and_x_choice(store, computed):
    ids = [_commit(store, *computed["a"], age=20), _commit(store, *computed["b"], age=10)]
    at = _app(compare=",".join(ids))
    assert at.slider(key="fn_smooth").value == pytest.approx(0.6)
    drawn = _charts(at)
    loss = next(f for t, f in drawn.items() if t.startswith("Loss:"))
    acc = next(f for t, f in drawn.items() if t.startswith("Accuracy:"))
    for fig in (loss, acc):
        colors = {t["name"].split(" · ")[0]: t["line"]["color"] for t in fig["data"]}
        assert len(colors) == 2 and len(set(colors.values())) == 2  # one colour per run
        names = [t["name"] for t in fig["data"]]
        assert sum(n.endswith("train (raw)") for n in names) == 2  # smoothing on: the raw values stay, faint
        assert max(i for i, n in enumerate(names) if n.endswith("· train")) < \
            min(i for i, n in enumerate(names) if n.endswith("· test"))  # test curves on top
    assert loss["layout"]["xaxis"]["title"]["text"] == "optimiser step"
    # smoothing 0 shows the raw values only; a log loss axis; wall time on x
    at.slider(key="fn_smooth").set_value(0.0).run()
    at.toggle(key="fn_logy").set_value(True).run()
    at.radio(key="fn_xaxis").set_value("time").run()
    assert not at.exception
    drawn = _charts(at)
    loss = next(f for t, f in drawn.items() if t.startswith("Loss:"))
    assert not any(t["name"].endswith("(raw)") for t in loss["data"])
    assert loss["layout"]["yaxis"]["type"] == "log"
    assert loss["layout"]["xaxis"]["title"]["text"] == "wall time (s)"
    xs = [x for t in loss["data"] if t["name"].endswith("· test") for x in t["x"]]
    assert xs and all(x > 0 for x in xs)
    # the view is a link
    q = {k: at.query_params[k] for k in ("xaxis", "smooth", "logy")}
    again = _app(compare=",".join(ids), **{k: v[0] if isinstance(v, list) else v for k, v in q.items()})
    assert again.radio(key="fn_xaxis").value == "time" and again.toggle(key="fn_logy").value is True
    assert again.slider(key="fn_smooth").value == 0.0
    names = {b.label for b in again.get("download_button")}
    assert {"compare_loss.png", "compare_accuracy.png", "compare_columns.png"} <= names


def test_bad_compare_view_link_is_reported():
    at = _app(xaxis="sideways", smooth="2")
    assert any("xaxis" in w.value for w in at.warning) and any("smooth" in w.value for w in at.warning)


# ------------------------------------------------------------------------------------ 4. metrics that fit
MAX_METRIC_CHARS = 10  # about what a quarter of the wide page shows at the metric's font size


def test_metrics_of_a_big_model_fit_their_columns():
    at = _app(variant="custom", columns="5", filters="256,512,512", epochs="1000")
    values = {m.label: m.value for m in at.metric}
    assert {"forward pass / image", "optimiser steps", "training compute"} <= set(values)
    long = {k: v for k, v in values.items() if len(v) > MAX_METRIC_CHARS}
    assert not long, long
    assert values["forward pass / image"].endswith("GFLOP")


# ------------------------------------------------------------------------------------ 5. Material icons
EMOJI = re.compile(r"[\u2190-\u21ff\u2300-\u23ff\u2460-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff]")
ARROWS_IN_DEJAVU = set("→←≥")  # drawn by DejaVu Sans: fine in prose


def test_buttons_use_material_icons_not_emoji(store, computed):
    rid = _commit(store, *computed["a"])
    at = _app(run=rid)
    for b in [*at.button, *at.get("download_button")]:
        assert not EMOJI.search(b.label), b.label
    assert at.button(key="fn_train").proto.icon == ":material/play_arrow:"
    assert at.button(key="fn_use_setup").proto.icon.startswith(":material/")
    files = [ROOT / "pages/2_FractalNet_Lab.py", *sorted((ROOT / "ui/fractalnet").glob("*.py"))]
    for path in files:
        odd = {c for c in EMOJI.findall(Path(path).read_text(encoding="utf-8"))} - ARROWS_IN_DEJAVU
        assert not odd, (path.name, odd)


def test_measure_speed_button_has_an_icon():
    at = _app()
    assert at.button(key="fn_measure").proto.icon == ":material/timer:"
