"""FractalNet lab in a real browser: the live loss curve grows while a run trains, and the downloaded checkpoint
(safetensors + config JSON) loads back in the engine and predicts exactly as the stored model does."""

from __future__ import annotations

import json
import time
from collections import Counter
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from tests.browser.conftest import wait_for_app

pytestmark = pytest.mark.browser

# Points of the "train (each step)" line in the chart titled "Loss" (-1 when no such chart is drawn yet).
LOSS_POINTS_JS = """
() => {
  for (const d of document.querySelectorAll('.js-plotly-plot')) {
    const raw = d.layout && d.layout.title && (d.layout.title.text || d.layout.title);
    const t = String(raw || '').replace(/<[^>]*>/g, '');  // Streamlit's theme wraps titles in <b>
    if (t === 'Loss' && d.data) {
      const tr = d.data.find(x => x.name === 'train (each step)');
      return tr && tr.x ? tr.x.length : 0;
    }
  }
  return -1;
}
"""


# Each trace of the chart titled TITLE, in drawing order: name, colour as [r, g, b], width and opacity.
TRACES_JS = """
(title) => {
  const rgb = (c) => {
    c = String(c || '').trim();
    let m = c.match(/^#([0-9a-f])([0-9a-f])([0-9a-f])$/i);
    if (m) return m.slice(1).map(h => parseInt(h + h, 16));
    m = c.match(/^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i);
    if (m) return m.slice(1).map(h => parseInt(h, 16));
    m = c.match(/^rgba?\\(([^)]*)\\)$/);
    return m ? m[1].split(',').slice(0, 3).map(v => Math.round(parseFloat(v))) : null;
  };
  for (const d of document.querySelectorAll('.js-plotly-plot')) {
    const raw = d.layout && d.layout.title && (d.layout.title.text || d.layout.title);
    if (String(raw || '').replace(/<[^>]*>/g, '') === title && d.data) {
      return d.data.map(t => ({name: t.name, color: rgb(t.line && t.line.color), width: (t.line || {}).width,
                               dash: (t.line || {}).dash || 'solid',
                               opacity: t.opacity === undefined ? 1 : t.opacity}));
    }
  }
  return null;
}
"""

# Text cut by its box (an ellipsis) in any st.metric label or value, or a widget's label.
CUT_LABELS_JS = """
() => {
  const cut = [];
  for (const m of document.querySelectorAll('[data-testid="stMetric"], [data-testid="stWidgetLabel"], '
                                            + '[data-testid="stCheckbox"] label')) {
    for (const e of m.querySelectorAll('*')) {
      if (e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1 && e.innerText.trim()) cut.push(e.innerText.trim());
    }
  }
  return cut;
}
"""


def _download_button(page, file_name: str):
    """The download button of ``file_name`` (its Material icon is hidden from the accessible name)."""
    return page.get_by_role("button", name=file_name, exact=True)


# A run long enough to be watched: every digit (1,438) in batches of 4 is 360 steps an epoch, several seconds of
# training even on a fast machine, so the chart (redrawn every second) is seen at more than one length before the
# run ends. (With 640 images in batches of 16 the whole run once finished between two redraws.)
EPOCHS, BATCH = 4, 4


def test_live_curve_grows_and_checkpoint_downloads_and_loads(page, tmp_path):
    import runs
    from engine.datasets import load_dataset
    from engine.fractalnet.checkpoint import load_checkpoint
    from engine.fractalnet.cost import steps_per_epoch
    from engine.fractalnet.inference import predict_logits

    total_steps = EPOCHS * steps_per_epoch(len(load_dataset("digits", seed=0).x_train), BATCH)
    page.goto(f"{page.app_url}/FractalNet_Lab?variant=micro&epochs={EPOCHS}&batch={BATCH}&seed=7")
    wait_for_app(page)
    page.get_by_role("button", name="Train", exact=True).click()

    # Watch the live chart: record the number of plotted steps while the job runs.
    seen: list[int] = []
    deadline = time.time() + 240
    while time.time() < deadline:
        n = page.evaluate(LOSS_POINTS_JS)
        if n > 0 and (not seen or n != seen[-1]):
            seen.append(n)
        if page.get_by_text("test accuracy, full net").count():
            break
        time.sleep(0.25)
    else:
        raise AssertionError(f"the run did not finish in time; loss points seen: {seen}")
    growing = [n for n in seen if n < total_steps]  # counts below the run's steps were drawn mid-run
    assert len(growing) >= 2 and growing == sorted(growing), f"the live curve did not grow: {seen}"
    page.screenshot(path=str(tmp_path / "fractalnet_lab_done.png"), full_page=True)

    run_id = parse_qs(urlparse(page.url).query)["run"][0]
    assert runs.status(run_id).state == "done"

    # Download the checkpoint (both files) from the page and load it back in the engine.
    ck_dir = tmp_path / "checkpoint"
    ck_dir.mkdir()
    for name in ("model.safetensors", "config.json"):
        with page.expect_download() as dl:
            _download_button(page, name).click()
        assert dl.value.suggested_filename == name
        dl.value.save_as(ck_dir / name)
    ck = load_checkpoint(ck_dir, device="cpu")
    assert ck.config.columns == 2 and ck.config.num_classes == 10 and ck.config.in_channels == 1

    summary = json.loads((runs.result_dir(run_id) / "summary.json").read_text())
    ds = load_dataset("digits", seed=0)
    pred = predict_logits(ck.model, ds.x_test).argmax(1).numpy()
    correct = int((pred == ds.y_test).sum())  # the summary stores a float32 mean: compare counts of images
    assert correct == round(summary["accuracy"]["full"] * len(ds.y_test))
    stored = load_checkpoint(runs.result_dir(run_id), device="cpu")
    np.testing.assert_array_equal(predict_logits(stored.model, ds.x_test[:50]).numpy(),
                                  predict_logits(ck.model, ds.x_test[:50]).numpy())

    # No label is cut at this width (the issue saw "Paths 2.92e…"): every metric and widget label fits its box.
    assert page.evaluate(CUT_LABELS_JS) == []

    # The downloaded loss chart is the page's: its line colours are the page's, the noisy training trace thin and
    # drawn first (under the test curves).
    from PIL import Image

    traces = page.evaluate(TRACES_JS, "Loss")
    assert traces and traces[0]["name"] == "train (each step)" and traces[-1]["name"] == "test: full net"
    assert traces[0]["width"] < min(t["width"] for t in traces[1:]) and traces[0]["opacity"] < 1
    with page.expect_download() as dl:
        _download_button(page, "loss.png").click()
    assert dl.value.suggested_filename == "loss.png"
    dl.value.save_as(tmp_path / "loss.png")
    img = Image.open(tmp_path / "loss.png").convert("RGB")
    counts = Counter(map(tuple, np.asarray(img).reshape(-1, 3).tolist()))
    page_colours = {tuple(t["color"]) for t in traces}
    for t in traces:  # each solid line covers many pixels of exactly the page's colour ...
        if t["opacity"] == 1 and t["dash"] == "solid":
            assert counts[tuple(t["color"])] >= 300, f"{t['name']}: the page's colour {t['color']} is not in the PNG"
    # ... and no other saturated colour does (antialiased edges and text give only a few of each)
    strong = {c for c, n in counts.items() if n >= 300 and max(c) - min(c) > 40}
    assert strong <= page_colours, f"colours the page does not draw: {strong - page_colours}"
