"""Real-browser tests of the Kronecker lab as a newcomer finds it (issue 13): what only a browser shows.

Streamlit's frontend forgets a widget that was not drawn and redraws it from the element the server sends; an
AppTest cannot show that, so the reset of the Train settings after an invalid graph is checked here too.
"""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from tests.browser.conftest import wait_for_app

pytestmark = pytest.mark.browser

POWER = "Kronecker power k (base ⊗ base ⊗ … k times)"
SETTINGS = {"Width": "64", "Epochs": "7", "Batch size": "128", "Learning rate": "0.01"}
CUT_LABELS_JS = """() => {
  const cut = [];
  for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
    for (const e of m.querySelectorAll('*')) {
      if (e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1 && e.innerText.trim()) cut.push(e.innerText.trim());
    }
  }
  return cut;
}"""


def _set(pg, label: str, value) -> None:
    """Type ``value`` into the field and wait until the app has it. On a busy machine a value typed while a rerun
    is in flight can be replaced by that rerun's widget state: type it again then (what a user would do), at most
    three times; the assertions that follow check the app kept it."""
    for _ in range(3):
        box = pg.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        pg.wait_for_timeout(500)
        wait_for_app(pg)
        if box.count() == 0 or box.input_value() == str(value):
            return


def _shows_settings(pg) -> None:
    """Every Train setting shows the user's value (waiting out a rerun in flight)."""
    from playwright.sync_api import expect

    for label, value in SETTINGS.items():
        expect(pg.get_by_label(label, exact=True)).to_have_value(value, timeout=15_000)


def test_train_settings_survive_an_invalid_graph_in_the_browser(page):
    from playwright.sync_api import expect

    pg = page
    pg.goto(pg.app_url + "/Kronecker_Lab")
    wait_for_app(pg)
    pg.get_by_role("tab", name="Train").click()
    for label, value in SETTINGS.items():
        _set(pg, label, value)
    _shows_settings(pg)

    _set(pg, POWER, 9)  # 19,683 nodes: refused, the tabs are not drawn
    expect(pg.get_by_text("This graph cannot be built")).to_have_count(1, timeout=15_000)
    expect(pg.get_by_role("tab", name="Train")).to_have_count(0, timeout=15_000)
    _set(pg, POWER, 2)
    pg.get_by_role("tab", name="Train").click()
    _shows_settings(pg)
    _set(pg, "Seed", 5)  # one more interaction sends what the browser shows: still the user's settings
    _shows_settings(pg)
    caption = pg.locator("[data-testid='stCaptionContainer']").filter(has_text="Train runs").first
    expect(caption).to_contain_text("seed 5", timeout=15_000)
    for text in ("width 64", "7 epochs", "lr 0.01", "batch 128"):
        assert text in caption.inner_text()
    query = parse_qs(urlparse(pg.url).query)
    assert query["t_width"] == ["64"] and query["t_epochs"] == ["7"] and query["t_seed"] == ["5"]


def test_copy_link_opens_the_same_view(page, browser):
    pg = page
    pg.goto(pg.app_url + "/Kronecker_Lab?power=1&t_width=48")
    wait_for_app(pg)
    pg.get_by_text("Then multiply by a second graph").click()
    pg.wait_for_timeout(300)
    wait_for_app(pg)
    pg.wait_for_url(lambda u: "second=" in u, timeout=30_000)  # the rerun that writes the link has finished
    pg.locator("[data-testid='stSidebar']").get_by_role("button", name="Copy link").click()
    url = pg.locator("[data-testid='stPopoverBody'] code").first.inner_text().strip()
    assert url.startswith(pg.app_url) and "second=" in url and "t_width=48" in url

    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    other.set_default_timeout(60_000)
    other.goto(url)
    wait_for_app(other)
    assert other.get_by_role("checkbox", name="Then multiply by a second graph (multi-fractal)").is_checked()
    other.get_by_role("tab", name="Train").click()
    assert other.get_by_label("Width", exact=True).input_value() == "48"
    assert other.get_by_label(POWER, exact=True).input_value() == "1"
    other.context.close()


def test_metrics_are_not_cut_in_a_narrow_window_and_dataflow_png_is_the_page_chart(browser, app_url, tmp_path):
    from PIL import Image

    from engine.kronecker import export
    from engine.kronecker.spec import KronSpec

    context = browser.new_context(viewport={"width": 1000, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(app_url + "/Kronecker_Lab?power=8")
    wait_for_app(pg)
    pg.wait_for_selector("[data-testid='stMetric']")
    assert pg.evaluate(CUT_LABELS_JS) == []

    pg.goto(app_url + "/Kronecker_Lab?power=3")
    wait_for_app(pg)
    with pg.expect_download() as dl:
        pg.get_by_role("button", name="dataflow.png", exact=True).click()
    got = np.asarray(Image.open(dl.value.path()).convert("RGB"))
    want = np.asarray(Image.open(io.BytesIO(export.dataflow_png(KronSpec.from_preset("example", 3).build())))
                      .convert("RGB"))
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 2
    context.close()
