"""Hostile and clumsy links and inputs (issue 12, items 5 and 7-11): every page answers with a named message, never
a traceback, and a link never starts compute the user did not ask for.

Each test runs against its own throw-away store, so "no job was submitted" means exactly that.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import page_texts, run_page

import runs
from engine.trainability import PRESETS, GridSpec, cost
from ui.format import format_duration
from ui.trainability import compute

EXPLORER = "pages/1_Trainability_Explorer.py"
FRACTALNET = "pages/2_FractalNet_Lab.py"
KRONECKER = "pages/3_Kronecker_Lab.py"
RUNS = "pages/4_Runs.py"
NESTED = "[" * 100_000
DEEP = "[" * 5_000 + "]" * 5_000  # short, but nested deeper than Python's JSON parser goes
LONG_ID = "x" * 300


@pytest.fixture(autouse=True)
def store(fresh_store):
    return fresh_store


def _open(page: str, **query: str) -> AppTest:
    return run_page(page, 120, **query)


def _texts(at: AppTest) -> str:
    return page_texts(at)


def _warnings(at: AppTest) -> str:
    return "\n".join([w.value for w in at.warning] + [e.value for e in at.error])


# --------------------------------------------------------------------------- 5: links start only cheap compute


def test_the_auto_compute_limit_is_a_256px_500_step_tanh_float64_grid():
    ref = GridSpec(activation="tanh", resolution=(256, 256), steps=500, dtype="float64")
    assert cost.AUTO_COMPUTE_LIMIT_S == pytest.approx(cost.estimate_seconds(ref))
    assert cost.auto_compute_ok(ref)
    assert cost.auto_compute_ok(PRESETS["tanh"].spec)
    assert not cost.auto_compute_ok(dataclasses.replace(ref, resolution=(257, 256)))
    assert not cost.auto_compute_ok(GridSpec(resolution=(8192, 8192), steps=100_000, width=256))


def test_an_expensive_link_starts_nothing_and_shows_the_estimate():
    at = _open(EXPLORER, resolution="8192,8192", steps="100000", width="256")
    assert runs.list_jobs() == []  # the view's job was not submitted
    spec = GridSpec(activation="tanh", resolution=(8192, 8192), steps=100_000, width=256)
    seconds = compute.estimate(spec)  # the one job's cost, at this store's measured speed when there is one
    assert seconds == pytest.approx(cost.estimate_seconds(spec))  # a fresh store has measured nothing yet
    text = _texts(at)
    assert "not started" in text and format_duration(seconds) in text, text
    assert at.button(key="tx_compute_view")  # a Compute button beside the estimate
    at.run()  # a rerun (e.g. the user touches a widget) still starts nothing
    assert runs.list_jobs() == []


def test_pressing_compute_on_an_expensive_link_starts_it(store):
    at = _open(EXPLORER, resolution="64,64", steps="2000", width="256")
    assert runs.list_jobs() == []
    at.button(key="tx_compute_view").click().run()
    assert not at.exception, at.exception
    spec = GridSpec(activation="tanh", resolution=(64, 64), steps=2000, width=256)
    # one job, the view's own, starts at once (issue 15: the map sharpens in that job, no preview job first)
    assert {s.id for s in runs.list_jobs()} == {store.key("grid", spec)}
    assert at.session_state["tx"]["confirmed"] == store.key("grid", spec)


def test_a_cheap_link_still_computes_at_once():
    _open(EXPLORER, resolution="16,16", steps="40")
    assert [s.kind for s in runs.list_jobs()] == ["grid"]


def test_a_link_whose_settings_were_refused_does_not_compute():
    at = _open(EXPLORER, resolution="16,16", steps="40", width="wide")
    assert "width" in _warnings(at)
    assert runs.list_jobs() == []


# --------------------------------------------------------------------------- 7: run ids the file system refuses


@pytest.mark.parametrize("run_id", [LONG_ID, "../../x", "a/b"], ids=["long", "parent", "slash"])
@pytest.mark.parametrize("page", [FRACTALNET, KRONECKER])
def test_an_overlong_run_id_is_a_message(page, run_id):
    at = _open(page, run=run_id)
    warnings = _warnings(at)
    assert "run" in warnings, warnings
    assert runs.list_jobs() == []


def test_overlong_ids_to_compare_are_ignored():
    _open(FRACTALNET, compare=f"{LONG_ID},{LONG_ID}y")


# --------------------------------------------------------------------------- 8: deeply nested JSON


@pytest.mark.parametrize("text", [NESTED, DEEP], ids=["long", "deep"])
@pytest.mark.parametrize("param", ["base", "second"])
def test_deeply_nested_matrix_in_a_link_is_a_message(param, text):
    at = _open(KRONECKER, **{param: text})
    assert param in _warnings(at), _warnings(at)
    assert {m.label: m.value for m in at.metric}["Nodes"] == "9"  # the default graph is on screen


@pytest.mark.parametrize("text", [NESTED, DEEP], ids=["long", "deep"])
def test_deeply_nested_matrix_pasted_is_a_message(text):
    at = _open(KRONECKER)
    at.text_area(key="kr_paste").set_value(text)
    at.button(key="kr_paste_apply").click().run()
    assert not at.exception, [e.message[:300] for e in at.exception]
    assert "base" in "\n".join(e.value for e in at.error)


# --------------------------------------------------------------------------- 9: filters of the Runs page


@pytest.mark.parametrize("query,param", [
    ({"state": "none"}, "state"), ({"kind": "none"}, "kind"), ({"state": "bogus"}, "state"),
    ({"kind": "grid,bogus"}, "kind"), ({"state": "DONE"}, "state"), ({"kind": NESTED}, "kind"),
])
def test_junk_filters_warn_and_the_page_renders(query, param):
    at = _open(RUNS, **query)
    warnings = _warnings(at)
    assert param in warnings, warnings
    allowed = "queued" if param == "state" else "grid"
    assert allowed in warnings  # the allowed values are named
    assert at.title[0].value == "Runs and artifacts"


def test_good_filters_give_no_warning():
    at = _open(RUNS, state="done,failed", kind="grid")
    assert not at.warning
    assert at.multiselect(key="runs-state").value == ["done", "failed"]


# --------------------------------------------------------------------------- 10: absurd custom filters


@pytest.mark.parametrize("filters", ["99999999999999999999999", "8," + "9" * 40, "-5"])
def test_absurd_custom_filters_are_a_named_message(filters):
    at = _open(FRACTALNET)
    at.selectbox(key="fn_variant").set_value("custom").run()
    at.text_input(key="fn_filters").set_value(filters).run()
    assert not at.exception, [e.message[:300] for e in at.exception]
    assert any("filters" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="fn_train").disabled


# --------------------------------------------------------------------------- 11: checkpoints that do not fit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real finished FractalNet result folder (micro, one epoch on 32 digits), trained in this process."""
    from engine.fractalnet import results
    from engine.fractalnet.train import TrainSpec
    from engine.fractalnet.variants import variant_config

    base = TrainSpec()
    spec = dataclasses.replace(base, epochs=1, max_train=32, max_test=32, batch_size=32, augment=False,
                               model=variant_config("micro", num_classes=base.model.num_classes,
                                                    in_channels=base.model.in_channels))
    out = tmp_path_factory.mktemp("fractalnet-result")
    results.run_to_dir(spec, out, threads=1)
    return spec, out


def _stored_checkpoint(store, trained, tmp_path, damage) -> str:
    spec, folder = trained
    other = dataclasses.replace(spec, seed=spec.seed + 1)  # its own store key
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    damage(copy, spec)
    key = store.key("fractalnet_train", other)
    store.commit(key, copy, {"kind": "fractalnet_train", "spec": other.to_dict()})  # consistent checksums
    return key


def _other_architecture(folder, spec) -> None:
    from engine.fractalnet.checkpoint import MODEL_FILE, save_checkpoint
    from engine.fractalnet.model import FractalNet

    narrow = dataclasses.replace(spec.model, filters=(8, 16))  # the same layers, other shapes
    save_checkpoint(folder / "narrow", FractalNet(narrow), ["0"] * narrow.num_classes, (8, 8))
    shutil.copy(folder / "narrow" / MODEL_FILE, folder / MODEL_FILE)
    shutil.rmtree(folder / "narrow")


def _bad_config(folder, spec) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"] = ["not", "a", "config"]
    (folder / "config.json").write_text(json.dumps(cfg))


def _bad_config_values(folder, spec) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"]["filters"] = [16, "wide"]
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("damage", [_other_architecture, _bad_config, _bad_config_values])
def test_a_checkpoint_that_does_not_fit_is_a_message(store, trained, tmp_path, damage):
    key = _stored_checkpoint(store, trained, tmp_path, damage)
    at = _open(FRACTALNET, run=key)
    errors = "\n".join(e.value for e in at.error)
    assert "does not fit" in errors, errors
    assert any(m.label == "test accuracy, full net" for m in at.metric)  # the rest of the result is shown
