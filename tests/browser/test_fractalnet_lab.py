"""FractalNet lab in a real browser: the live loss curve grows while a run trains, and the downloaded checkpoint
(safetensors + config JSON) loads back in the engine and predicts exactly as the stored model does."""

from __future__ import annotations

import json
import time
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
    page.get_by_role("button", name="▶ Train").click()

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
            page.get_by_role("button", name=f"⬇ {name}", exact=True).click()
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
