"""Real-browser checks of the explorer's figure exports and video size (issue 13, item 3): the figure downloads are
drawn by Streamlit only on click (a deferred download, run on a server thread), so only a real server shows that
the files arrive and parse; and a video is drawn no wider than its own pixels."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode

import pytest

import runs
from engine import trainability as tr
from engine.trainability.views import view_spec, zoom_view
from tests.browser.conftest import wait_for_app
from ui.trainability.link import EXPLORER_URL_PATH, grid_view_query

MAP = "[class*='st-key-tx_map_'] .nsewdrag"


pytestmark = pytest.mark.usefixtures("stop_leftover_jobs")


def _zoomed(seed: int) -> tuple[tr.GridSpec, list]:
    """A tiny tanh grid (24 x 24, 60 steps) and a two-level path into it, both levels computed."""
    base = dataclasses.replace(tr.PRESETS["tanh"].spec, resolution=(24, 24), steps=60, seed=seed)
    root = (*base.x_range, *base.y_range)
    path = [root, zoom_view(root, 2.0, 1.0, 2)]
    for view in path:
        assert runs.wait(runs.submit("grid", view_spec(base, view)[0]), timeout=120).state == "done"
    return base, path


def _open(page, base, path) -> None:
    query = grid_view_query(base.to_dict(), preset="tanh", path=path, level=1)
    page.goto(f"{page.app_url}/{EXPLORER_URL_PATH}?{urlencode(query, safe=',;')}")
    wait_for_app(page)
    page.wait_for_selector(MAP, timeout=120_000)


def _download(page, name: str) -> tuple[str, bytes]:
    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name=name).click()
    return info.value.suggested_filename, Path(info.value.path()).read_bytes()


def test_figure_downloads_are_drawn_on_click_and_arrive(page):
    base, path = _zoomed(seed=821)
    _open(page, base, path)
    page.get_by_text("Figure for a paper").click()
    name, pdf = _download(page, "Map · PDF (vector)")
    assert name == "trainability-tanh-L1-24px-figure.pdf"
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    name, png = _download(page, "Map · PNG")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image
    import io

    assert Image.open(io.BytesIO(png)).size == (1300, 1100)  # 6.5 x 5.5 in at 200 dpi
    name, svg = _download(page, "Zoom path · SVG (vector)")
    assert name == "trainability-tanh-zoom-path-L0-L1.svg"
    assert ET.fromstring(svg).tag.endswith("svg") and b'id="zoom-box-0"' in svg


def test_video_is_drawn_no_wider_than_its_pixels(page):
    base, path = _zoomed(seed=822)
    _open(page, base, path)
    page.get_by_role("tab", name="Zoom video").click()
    for label, option in (("Keyframe resolution", "32 × 32"), ("Output size", "128 px (×4)")):
        page.get_by_role("combobox", name=label, exact=True).click()
        page.get_by_role("option", name=option, exact=True).click()
        wait_for_app(page)
    page.get_by_text("32-px keyframes upscaled ×4 (nearest neighbour) to 128 px").wait_for()
    page.get_by_role("button", name="Render zoom video").click()
    video = page.locator("video")
    video.wait_for(timeout=180_000)
    box = video.bounding_box()
    assert box is not None and 0 < box["width"] <= 128.5, box  # the column is ~1000 px: not stretched to it
