"""AppTest of the FractalNet lab page: configure, link state, uploads (good and bad), train, stop, resume, compare.

Training runs are real background jobs (``runs.submit`` starts a worker process) on a tiny model (``micro``) and a
few dozen digits, so the whole file stays well under a minute on a quiet machine.
"""

from __future__ import annotations

import io
import json
import time
import zipfile

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import open_page

import runs
from engine.fractalnet.checkpoint import resume_point
from engine.fractalnet.cost import steps_per_epoch
from engine.fractalnet.metrics import read_metrics_csv
from engine.fractalnet.train import TrainSpec

PAGE = "pages/2_FractalNet_Lab.py"
EPOCHS = 10  # x 2 steps (64 images, batch 32): long enough to stop it mid-run
TIMEOUT = 180


def _app(**params) -> AppTest:
    return open_page(PAGE, TIMEOUT, **params).run()


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def _metric(at: AppTest, label: str) -> str | None:
    for m in at.metric:
        if m.label == label:
            return m.value
    return None


def _wait_for_event(job_id: str, kind: str = "step", timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(isinstance(e, dict) and e.get("kind") == kind for e in runs.events(job_id)):
            return
        st = runs.status(job_id)
        assert st is not None and st.state in ("queued", "running"), f"job ended early: {st}"
        time.sleep(0.1)
    raise AssertionError(f"no {kind!r} event from {job_id} within {timeout} s")


def test_defaults_render_with_diagram_and_cost():
    at = _app()
    _no_exception(at)
    assert at.selectbox(key="fn_variant").value == "small"
    assert at.selectbox(key="fn_dataset").value == "digits"
    assert not at.error
    # the block diagram (a plotly chart), the per-column table and the cost estimate are drawn
    assert any("fractal block" in m.value for m in at.markdown)
    d = TrainSpec()  # the page's defaults are the engine's
    assert at.number_input(key="fn_epochs").value == d.epochs
    assert at.selectbox(key="fn_optimizer").value == d.optimizer
    assert _metric(at, "optimiser steps") == f"{steps_per_epoch(1438, d.batch_size) * d.epochs:,}"  # 1,438 digits
    assert _metric(at, "forward pass / image").endswith("MFLOP")
    assert dict(at.query_params) == {}  # the defaults make no link parameters


def test_configure_writes_link_restores_setup_and_measures_speed():
    at = _app()
    at.selectbox(key="fn_variant").set_value("micro").run()
    at.radio(key="fn_join").set_value("learned").run()
    at.number_input(key="fn_epochs").set_value(3).run()
    at.number_input(key="fn_lr").set_value(0.02).run()
    _no_exception(at)
    q = {k: v for k, v in at.query_params.items()}
    assert q["variant"] == ["micro"] or q["variant"] == "micro"
    again = _app(**{k: (v[0] if isinstance(v, list) else v) for k, v in q.items()})
    _no_exception(again)
    assert again.selectbox(key="fn_variant").value == "micro"
    assert again.radio(key="fn_join").value == "learned"
    assert again.number_input(key="fn_epochs").value == 3
    assert again.number_input(key="fn_lr").value == pytest.approx(0.02)
    # the cost estimate turns into a time once the model's speed was measured here
    assert _metric(again, "estimated time") == "—"
    again.button(key="fn_measure").click().run()
    _no_exception(again)
    est = _metric(again, "estimated time")
    assert est and est != "—" and est.endswith(("s", "min", "h"))


def test_bad_link_parameters_are_reported_not_fatal():
    at = _app(variant="gigantic", epochs="many")
    _no_exception(at)
    assert at.selectbox(key="fn_variant").value == "small"
    assert any("variant" in w.value for w in at.warning)
    assert any("epochs" in w.value for w in at.warning)


def test_custom_model_and_its_errors():
    at = _app()
    at.selectbox(key="fn_variant").set_value("custom").run()
    at.text_input(key="fn_columns").set_value("2").run()
    at.text_input(key="fn_filters").set_value("8,16").run()
    _no_exception(at)
    assert not at.error
    assert any("C = 2" in m.value for m in at.markdown)
    at.text_input(key="fn_filters").set_value("8,x").run()
    assert any(e.value.startswith("Model: filters:") for e in at.error)
    assert at.button(key="fn_train").disabled
    at.text_input(key="fn_filters").set_value("8,16,16,16").run()  # 4 poolings need 16x16; digits are 8x8
    assert any("too small" in e.value for e in at.error)
    assert at.button(key="fn_train").disabled


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_bad_uploads_show_errors_and_a_good_one_previews():
    at = _app()
    at.selectbox(key="fn_dataset").set_value("upload").run()
    _no_exception(at)
    assert at.button(key="fn_train").disabled  # nothing uploaded yet
    at.file_uploader(key="fn_upload_file").set_value(("broken.zip", b"this is not a zip", "application/zip")).run()
    _no_exception(at)
    errors = [e.value for e in at.error]
    assert any("Cannot use **broken.zip**" in e and "not a readable zip" in e for e in errors), errors
    evil = _zip({"../evil.png": b"x", "a/1.png": b"y"})
    at.file_uploader(key="fn_upload_file").set_value(("evil.zip", evil, "application/zip")).run()
    assert any("path traversal" in e.value for e in at.error)
    assert at.button(key="fn_train").disabled
    # a good .npz: accepted, previewed, trainable
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8), y=np.arange(40) % 4)
    at.file_uploader(key="fn_upload_file").set_value(("tiny.npz", buf.getvalue(), "application/octet-stream")).run()
    _no_exception(at)
    assert not at.error
    assert any("tiny.npz" in s.value for s in at.success)
    assert any("4 classes" in m.value for m in at.markdown)
    assert any("one row per class" in c for img in at.image for c in img.captions)  # the preview grid
    assert not at.button(key="fn_train").disabled
    assert at.query_params["upload"]  # the link names the saved upload


@pytest.fixture(scope="module")
def stopped_and_resumed():
    """Start a run from the page, stop it after its first step, resume it from its checkpoint, let it finish."""
    at = _app(variant="micro", epochs=str(EPOCHS), max_train="64", batch="32")
    _no_exception(at)
    at.button(key="fn_train").click().run()
    _no_exception(at)
    first = at.session_state["fn_run"]
    assert at.query_params["run"] == first or at.query_params["run"] == [first]
    cancel = [b for b in at.button if b.key and b.key.startswith("fn-job-cancel-")]
    assert cancel, "the running job shows a cancel button"
    _wait_for_event(first, "step")
    cancel[0].click().run()  # the page's own Cancel button
    st = runs.wait(first, 60)
    assert st.state == "cancelled", st
    at.run()
    _no_exception(at)
    assert any("checkpoint was kept" in i.value for i in at.info)
    at.button(key="fn_resume").click().run()
    second = at.session_state["fn_run"]
    assert second != first
    st = runs.wait(second, TIMEOUT)
    assert st.state == "done", st
    at.run()
    return at, first, second


def test_start_stop_resume_finishes_with_the_whole_history(stopped_and_resumed):
    at, first, second = stopped_and_resumed
    _no_exception(at)
    spec = runs.status(second).spec
    assert spec["resume_from"] and spec["epochs"] == EPOCHS
    rows = read_metrics_csv(runs.result_dir(second) / "metrics.csv")
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [int(r["epoch"]) for r in epochs] == list(range(1, EPOCHS + 1))  # nothing lost or repeated
    steps = [r["step"] for r in rows if r["kind"] == "step"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) == 2 * EPOCHS
    # results drawn: accuracy of the full net and the deepest column, downloads
    assert _metric(at, "test accuracy, full net").endswith("%")
    assert _metric(at, "deepest column alone").endswith("%")
    names = {b.label for b in at.get("download_button")}
    assert {"model.safetensors", "config.json", "metrics.csv", "loss.png", "columns.png", "confusion.png",
            "saliency.png"} <= names  # each with a Material download icon (an emoji is an empty box in Chromium)
    assert {b.proto.icon for b in at.get("download_button")} == {":material/download:"}
    summary = json.loads((runs.result_dir(second) / "summary.json").read_text())
    assert len(summary["accuracy"]["columns"]) == 2


def test_the_stopped_run_names_its_checkpoint_by_the_epoch_its_step_is_in(stopped_and_resumed):
    """Counted as the curves count (epoch 1 holds steps 1 and 2), not by the epochs already tested."""
    _, first, _ = stopped_and_resumed
    step = resume_point(runs.partial_dir(first))["step"]
    epoch, into = divmod(step, 2)  # 64 images in batches of 32
    at = _app(run=first)
    _no_exception(at)
    text = next(i.value for i in at.info if "checkpoint was kept" in i.value)
    where = f"1 of 2 steps into epoch {epoch + 1} of {EPOCHS}" if into else f"the end of epoch {epoch} of {EPOCHS}"
    assert f"step {step}" in text and where in text, text


def test_run_link_reopens_run_and_its_setup(stopped_and_resumed):
    _, _, second = stopped_and_resumed
    at = _app(run=second)
    _no_exception(at)
    assert at.selectbox(key="fn_variant").value == "micro"
    assert at.number_input(key="fn_epochs").value == EPOCHS
    assert at.number_input(key="fn_max_train").value == 64
    assert _metric(at, "test accuracy, full net") is not None
    # saliency for another test image and another column
    at.number_input(key="fn_sal_index").set_value(3).run()
    at.selectbox(key="fn_sal_column").set_value("column 0").run()
    _no_exception(at)
    assert any(c.startswith("predicted:") for img in at.image for c in img.captions)


def test_predict_on_an_uploaded_image(stopped_and_resumed):
    from PIL import Image

    _, _, second = stopped_and_resumed
    at = _app(run=second)
    buf = io.BytesIO()
    Image.new("L", (20, 20), 200).save(buf, format="PNG")
    at.file_uploader(key="fn_predict_file").set_value(("four.png", buf.getvalue(), "image/png")).run()
    _no_exception(at)
    assert any(m.value.startswith("Prediction: **") for m in at.markdown)
    at.file_uploader(key="fn_predict_file").set_value(("bad.png", b"not an image", "image/png")).run()
    assert any("Cannot predict on **bad.png**" in e.value for e in at.error)


def test_compare_two_finished_runs(stopped_and_resumed):
    _, _, second = stopped_and_resumed
    at = _app(variant="micro", epochs="1", max_train="32", batch="32", seed="1")
    at.button(key="fn_train").click().run()
    other = at.session_state["fn_run"]
    assert runs.wait(other, TIMEOUT).state == "done"
    at = _app(compare=f"{second},{other}")
    _no_exception(at)
    assert set(at.multiselect(key="fn_compare").value) == {second, other}
    names = {b.label for b in at.get("download_button")}
    assert {"compare_loss.png", "compare_accuracy.png", "compare_columns.png"} <= names


def test_png_figures_for_downloads_decode():
    """The figures offered as PNG (drawn with Pillow, no kaleido) are real images of the expected size."""
    from PIL import Image

    from engine import png

    line = png.png_line_chart({"a": ([1, 2, 3], [0.5, 0.25, float("nan")]), "b": ([1], [0.3])}, title="Loss",
                             x_title="epoch", y_title="loss", width=500, height=300)
    bars = png.png_bar_chart(["column 0", "full net"], {"run": [0.9, 0.95]}, y_range=(0.0, 1.0), width=400,
                            height=250)
    heat = png.png_heatmap(np.eye(3) * 7, row_labels="abc", col_labels="abc", title="Confusion")
    for data, size in ((line, (500, 300)), (bars, (400, 250)), (heat, None)):
        img = Image.open(io.BytesIO(data))
        assert img.format == "PNG"
        if size:
            assert img.size == size
        assert len(np.unique(np.asarray(img.convert("L")))) > 2  # something was drawn
