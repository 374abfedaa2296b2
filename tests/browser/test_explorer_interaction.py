"""Real-browser checks of how the explorer's map answers the mouse (issue 13): Plotly's own view buttons are gone,
a plain drag never pans (no white margins), "Drag a box" turns a drag into a recomputed box zoom, a
single click is a single level, and no st.metric label or value is cut off.

Grids are tiny (24 x 24 pixels, 60 steps), so each view computes in a second or two.
"""

from __future__ import annotations

import dataclasses

import pytest

from engine import trainability as tr
from tests.browser.conftest import wait_for_app
from tests.browser.test_trainability_explorer import (
    MAP, _click_map, _hover_ready, _open, _shot, _url_view, _wait_level, _wait_map,
)

PLOT = "[class*='st-key-tx_map_'] .js-plotly-plot"
VIEW_BUTTONS = {"Zoom", "Pan", "Zoom in", "Zoom out", "Autoscale", "Reset axes"}  # Plotly's titles


pytestmark = pytest.mark.usefixtures("stop_leftover_jobs")


def _spec(res: int = 24, steps: int = 60, preset: str = "tanh", **over) -> tr.GridSpec:
    return dataclasses.replace(tr.PRESETS[preset].spec, resolution=(res, res), steps=steps, **over)


def _axis_ranges(page) -> list:
    return page.evaluate(f"() => {{ const g = document.querySelector(\"{PLOT}\");"
                         " return [g._fullLayout.xaxis.range, g._fullLayout.yaxis.range]; }")


def _drag(page, drag, a: tuple[float, float], b: tuple[float, float]) -> None:
    box = drag.bounding_box()
    _hover_ready(page, box["x"] + a[0] * box["width"], box["y"] + a[1] * box["height"])
    page.mouse.down()
    for t in (0.3, 0.6, 1.0):
        page.mouse.move(box["x"] + (a[0] + t * (b[0] - a[0])) * box["width"],
                        box["y"] + (a[1] + t * (b[1] - a[1])) * box["height"], steps=4)
    page.mouse.up()


def test_map_has_no_plotly_view_buttons_and_a_drag_does_not_pan(page):
    _open(page, _spec(seed=21))
    drag = _wait_map(page)
    titles = set(page.eval_on_selector_all(f"{PLOT} .modebar-btn", "els => els.map(e => e.dataset.title)"))
    assert not titles & VIEW_BUTTONS, titles
    assert "Box Select" in titles  # the one drag tool the page turns into a recomputed zoom
    before = _axis_ranges(page)
    level0, view0 = _url_view(page)
    _drag(page, drag, (0.3, 0.3), (0.6, 0.55))
    page.wait_for_timeout(1500)
    wait_for_app(page)
    assert _axis_ranges(page) == before  # nothing panned: no white margins
    assert _url_view(page) == (level0, view0)


def test_drag_a_box_mode_zooms_to_the_dragged_box(page):
    _open(page, _spec(seed=22))
    _wait_map(page)
    page.locator("[class*='st-key-tx_mode'] button", has_text="Drag a box").click()
    wait_for_app(page)
    page.wait_for_function(f"() => document.querySelector(\"{PLOT}\")?._fullLayout?.dragmode === 'select'")
    drag = page.locator(MAP).first
    _, (x0, x1, y0, y1) = _url_view(page)
    (ax, ay), (bx, by) = (0.2, 0.25), (0.55, 0.6)
    _drag(page, drag, (ax, ay), (bx, by))
    _wait_level(page, 1)
    _, (nx0, nx1, ny0, ny1) = _url_view(page)
    w, h = x1 - x0, y1 - y0
    assert nx0 == pytest.approx(x0 + ax * w, abs=0.01 * w) and nx1 == pytest.approx(x0 + bx * w, abs=0.01 * w)
    assert ny1 == pytest.approx(y1 - ay * h, abs=0.01 * h) and ny0 == pytest.approx(y1 - by * h, abs=0.01 * h)
    page.get_by_text("Level 1 — x ∈").first.wait_for(state="visible", timeout=60_000)
    _wait_map(page)  # the box's view is computed, not enlarged


def test_a_single_click_is_a_single_level(page):
    _open(page, _spec(seed=23))
    drag = _wait_map(page)
    _click_map(page, drag, 0.4, 0.45)
    _wait_level(page, 1)
    page.get_by_text("Level 1 — x ∈").first.wait_for(state="visible", timeout=60_000)
    _wait_map(page)  # the level-1 map arrived (the chart was redrawn under its new key) ...
    page.wait_for_timeout(3000)  # ... and the live panel's reruns have settled
    wait_for_app(page)
    level, _ = _url_view(page)
    assert level == 1
    assert page.locator("[class*='st-key-tx_crumb_']").count() == 2  # the path: full range and one level


def test_no_metric_label_or_value_is_cut(page):
    spec = _spec(preset="offset", seed=24)
    _open(page, spec, preset="offset", mode="inspect", pixel=(float(spec.x_values[5]), float(spec.y_values[7])))
    _wait_map(page)
    page.get_by_text("Pixel inspection").first.wait_for(state="visible", timeout=60_000)
    page.wait_for_selector("[data-testid='stMetric']")
    wait_for_app(page)
    _shot(page, "explorer-metrics")
    cut = page.evaluate("""() => {
        const out = [];
        for (const m of document.querySelectorAll("[data-testid='stMetric']")) {
            for (const el of m.querySelectorAll('*')) {
                if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) out.push(el.textContent);
            }
        }
        return out;
    }""")
    assert page.locator("[data-testid='stMetric']").count() >= 5  # fraction, pixel panel, dimension tab
    assert cut == [], cut
