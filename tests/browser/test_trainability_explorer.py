"""Real-browser tests of the Trainability Explorer: click and box zoom, downloads, reload mid-job, shared links.

Each test opens the page through a link (query parameters), which is also how a user shares a view; grids are
tiny (24 x 24 pixels, 60 steps) so every view computes in a second or two on a shared 2-core machine. The view
a test reads back comes from the page's own URL, which the page rewrites after every run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import numpy as np
import pytest

import runs
from cache import default_store
from engine import trainability as tr
from engine.trainability.views import view_spec, zoom_view
from ui.heatmap import coordinate_decimals, format_coordinate
from ui.state import decode_query_value
from ui.trainability.link import EXPLORER_URL_PATH, grid_view_query
from tests.browser.conftest import wait_for_app

SHOTS = Path(os.environ.get("FRACTAL_LAB_SHOTS", "/tmp/fractal-lab-shots"))
MAP = "[class*='st-key-tx_map_'] .nsewdrag"


pytestmark = pytest.mark.usefixtures("stop_leftover_jobs")


def _spec(res: int = 24, steps: int = 60, **over) -> tr.GridSpec:
    return dataclasses.replace(tr.PRESETS["tanh"].spec, resolution=(res, res), steps=steps, **over)


def _open(page, spec: tr.GridSpec, **kwargs) -> None:
    kwargs.setdefault("preset", "tanh")
    query = grid_view_query(spec.to_dict(), **kwargs)
    page.goto(f"{page.app_url}/{EXPLORER_URL_PATH}?{urlencode(query, safe=',;')}")
    wait_for_app(page)


def _url_view(page) -> tuple[int, tuple[float, float, float, float]]:
    # read the address from the page itself: Playwright's cached page.url only refreshes while it pumps events
    q = parse_qs(urlparse(page.evaluate("() => location.href")).query)
    path = decode_query_value(q["path"][0], [(0.0, 0.0, 0.0, 0.0)])
    level = int(q["level"][0])
    return level, path[level]


def _wait_map(page, timeout_ms: int = 120_000):
    page.wait_for_selector(MAP, timeout=timeout_ms)
    wait_for_app(page)
    return page.locator(MAP).first


def _wait_level(page, level: int, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if _url_view(page)[0] == level:
                return
        except (KeyError, ValueError):
            pass
        page.wait_for_timeout(200)
    raise AssertionError(f"the URL never reached level {level}: {page.evaluate('() => location.href')}")


def _hover_ready(page, x: float, y: float) -> None:
    """Move the mouse to (x, y) and wait for the map's hover label: proof plotly has wired its events, so a click
    that follows is a real selection (a click during the chart's first paint can be lost)."""
    for _ in range(20):
        page.mouse.move(x - 3, y - 3)
        page.mouse.move(x, y)
        try:
            page.wait_for_function(
                "() => { const h = document.querySelector(\"[class*='st-key-tx_map_'] .hoverlayer\");"
                " return h && h.textContent.includes('10^'); }", timeout=1500)
            return
        except Exception:
            continue
    raise AssertionError("the map never showed a hover label")


def _click_map(page, drag, fx: float, fy: float) -> None:
    box = drag.bounding_box()
    x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
    _hover_ready(page, x, y)
    page.mouse.click(x, y)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_click_zooms_by_the_factor_around_the_clicked_point(page):
    _open(page, _spec())
    drag = _wait_map(page)
    level0, (x0, x1, y0, y1) = _url_view(page)
    fx, fy = 0.3, 0.35
    _click_map(page, drag, fx, fy)
    _wait_level(page, level0 + 1)
    _, (nx0, nx1, ny0, ny1) = _url_view(page)
    # the factor: both axes exactly 2x narrower
    assert (nx1 - nx0) == pytest.approx((x1 - x0) / 2, rel=1e-9)
    assert (ny1 - ny0) == pytest.approx((y1 - y0) / 2, rel=1e-9)
    # around the clicked point: the new centre is the click, up to one cell of the 64-point click overlay and the
    # snap to the full range's pixel lattice (at most one pixel of the new level; issue 15: a 2x click reuses a
    # quarter of its pixels, so its pixels lie on the parent's lattice)
    cx, cy = x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)
    cell_x, cell_y = (x1 - x0) / 63, (y1 - y0) / 63
    step_x, step_y = (nx1 - nx0) / 23, (ny1 - ny0) / 23
    assert abs((nx0 + nx1) / 2 - cx) <= 1.01 * (cell_x + step_x)
    assert abs((ny0 + ny1) / 2 - cy) <= 1.01 * (cell_y + step_y)
    child = view_spec(_spec(), (nx0, nx1, ny0, ny1))[0]
    assert child.lattice is not None  # on the lattice: every other pixel is one of level 0's
    parent = _spec()
    assert np.isin(child.x_values, parent.x_values).sum() == 12 and np.isin(child.y_values, parent.y_values).sum() == 12
    # the new level is computed and drawn, with its own coordinates in the caption
    page.get_by_text("Level 1 — x ∈").first.wait_for(state="visible", timeout=60_000)
    _wait_map(page)
    _shot(page, "explorer-level1")
    # a second click zooms again from the new view (factor 4 this time, chosen from the selectbox)
    _open(page, _spec(), path=[(x0, x1, y0, y1), (nx0, nx1, ny0, ny1)], level=1, factor=4.0)
    drag = _wait_map(page)
    _click_map(page, drag, 0.5, 0.5)
    _wait_level(page, 2)
    _, (mx0, mx1, my0, my1) = _url_view(page)
    assert (mx1 - mx0) == pytest.approx((nx1 - nx0) / 4, rel=1e-9)
    _wait_map(page)
    _shot(page, "explorer-level2")


def test_box_zoom_goes_to_the_dragged_box(page):
    _open(page, _spec())
    drag = _wait_map(page)
    _, (x0, x1, y0, y1) = _url_view(page)
    box = drag.bounding_box()
    _hover_ready(page, box["x"] + 0.5 * box["width"], box["y"] + 0.5 * box["height"])
    page.locator("[class*='st-key-tx_map_'] .modebar-btn[data-val='select']").first.click()
    box = drag.bounding_box()
    (ax, ay), (bx, by) = (0.2, 0.25), (0.55, 0.6)
    page.mouse.move(box["x"] + ax * box["width"], box["y"] + ay * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.4 * box["width"], box["y"] + 0.4 * box["height"], steps=5)
    page.mouse.move(box["x"] + bx * box["width"], box["y"] + by * box["height"], steps=5)
    page.mouse.up()
    _wait_level(page, 1)
    _, (nx0, nx1, ny0, ny1) = _url_view(page)
    w, h = x1 - x0, y1 - y0
    tol_x, tol_y = 0.01 * w, 0.01 * h
    assert nx0 == pytest.approx(x0 + ax * w, abs=tol_x) and nx1 == pytest.approx(x0 + bx * w, abs=tol_x)
    assert ny1 == pytest.approx(y1 - ay * h, abs=tol_y) and ny0 == pytest.approx(y1 - by * h, abs=tol_y)
    _wait_map(page)


def test_png_download_arrives(page):
    _open(page, _spec())
    _wait_map(page)
    with page.expect_download() as info:
        page.get_by_role("button", name="Image (PNG, full resolution)").click()
    data = Path(info.value.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # full resolution: the PNG is as many pixels as the grid
    from PIL import Image
    import io

    assert Image.open(io.BytesIO(data)).size == (24, 24)


def test_reload_mid_job_finds_the_job(page):
    spec = _spec(res=96, steps=500, seed=7)  # long enough to still be running after a reload
    job_id = default_store().key("grid", spec)
    _open(page, spec)
    page.wait_for_selector("[data-testid='stProgress']", timeout=60_000)
    status = runs.status(job_id)  # the view's one job exists as soon as the page drew its progress
    assert status is not None and status.state in ("queued", "running"), status
    _shot(page, "explorer-running")
    page.reload()
    wait_for_app(page)
    page.wait_for_selector("[data-testid='stProgress']", timeout=30_000)
    page.get_by_text("This view (96 × 96)").first.wait_for(state="visible", timeout=30_000)
    after = runs.status(job_id)
    assert after.state in ("queued", "running", "done"), after
    assert after.created == status.created  # the same job, not a second one


def test_query_param_url_restores_the_view(page):
    root = (-3.0, 6.0, -3.0, 6.0)
    lvl1 = zoom_view(root, 0.5, 1.0, 4)
    _open(page, _spec(), path=[root, lvl1], level=1, factor=4.0)
    _wait_map(page)
    level, view = _url_view(page)
    assert level == 1 and view == pytest.approx(lvl1)
    d = coordinate_decimals(view[1] - view[0], 1000)
    page.get_by_text(f"x ∈ [{format_coordinate(view[0], d)}").first.wait_for(state="visible", timeout=30_000)
    # the factor selectbox shows the link's factor; back leads to the full range
    assert page.locator("[class*='st-key-tx_factor'] input").input_value() == "× 4"
    page.locator(".st-key-tx_back button").first.click()
    _wait_level(page, 0)
    assert _url_view(page)[1] == pytest.approx(root)
