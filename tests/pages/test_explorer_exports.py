"""Figure-ready exports on the Trainability Explorer (issue 13, item 3): the map as PNG, SVG and PDF at a chosen size
and DPI, the zoom path of the stored levels (the others left out, and said), drawn only when a download is
clicked; zoom videos at a chosen output size, shown never larger than their own pixels.

Grids are tiny (16 x 16, 40 steps). AppTest has no Streamlit runtime, so a button's deferred data is never called
here: a spy on ``st.download_button`` records what each button holds, and the test calls it as a click would.
"""

from __future__ import annotations

import dataclasses
import io
import xml.etree.ElementTree as ET

import pytest
import streamlit as st
from PIL import Image

import runs
from cache import default_store
from engine import trainability as tr
from engine.trainability import figures
from engine.trainability.views import view_spec, zoom_view
from tests.pages.conftest import open_page
from ui.trainability.link import grid_view_query

PAGE = "pages/1_Trainability_Explorer.py"
TIMEOUT = 120
MIMES = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}


pytestmark = pytest.mark.usefixtures("stop_leftover_jobs")


@pytest.fixture
def downloads(monkeypatch) -> dict[str, tuple]:
    """file name -> (mime, data) of every download button the page draws (the latest run wins)."""
    seen: dict[str, tuple] = {}
    real = st.download_button

    def spy(label, data, file_name=None, mime=None, **kwargs):
        seen[file_name] = (mime, data)
        return real(label, data, file_name, mime, **kwargs)

    monkeypatch.setattr(st, "download_button", spy)
    return seen


@pytest.fixture
def renders(monkeypatch) -> list[str]:
    """The figure functions' calls (what was drawn)."""
    calls: list[str] = []
    for name in ("map_figure", "zoom_path_figure"):
        real = getattr(figures, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(figures, name, counted)
    return calls


def _tiny(seed: int) -> tr.GridSpec:
    return dataclasses.replace(tr.PRESETS["tanh"].spec, resolution=(16, 16), steps=40, seed=seed)


def _levels(base: tr.GridSpec, n: int) -> list[tuple]:
    path = [(*base.x_range, *base.y_range)]
    for _ in range(n - 1):
        v = path[-1]
        path.append(zoom_view(v, (v[0] + v[1]) / 2 + 0.4, (v[2] + v[3]) / 2 - 0.3, 2))
    return path


def _compute(base: tr.GridSpec, view) -> str:
    job_id = runs.submit("grid", view_spec(base, view)[0])
    assert runs.wait(job_id, timeout=TIMEOUT).state == "done"
    return job_id


def _open(base: tr.GridSpec, path, level: int):
    at = open_page(PAGE, TIMEOUT, **grid_view_query(base.to_dict(), preset="tanh", path=path, level=level)).run()
    assert not at.exception, at.exception
    return at


def _texts(at) -> str:
    return "\n".join(str(e.value) for e in [*at.caption, *at.markdown, *at.error, *at.info])


def _check_bytes(fmt: str, data: bytes) -> None:
    if fmt == "png":
        assert Image.open(io.BytesIO(data)).format == "PNG"
    elif fmt == "svg":
        assert ET.fromstring(data).tag.endswith("svg")
    else:
        assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")


def _offered(downloads: dict, stem_part: str) -> dict[str, tuple]:
    return {name.rsplit(".", 1)[1]: v for name, v in downloads.items() if stem_part in name}


def test_map_figure_in_three_formats_at_the_chosen_size_drawn_only_on_click(downloads, renders):
    base = _tiny(seed=811)
    _compute(base, _levels(base, 1)[0])
    at = _open(base, _levels(base, 1), 0)
    assert any(e.label == "Figure for a paper" for e in at.expander)
    at.number_input(key="tx_fig_w").set_value(4.0)
    at.number_input(key="tx_fig_h").set_value(3.0)
    at.number_input(key="tx_fig_dpi").set_value(100).run()
    assert not at.exception, at.exception
    offered = _offered(downloads, "-figure")
    assert {fmt: mime for fmt, (mime, _) in offered.items()} == MIMES
    keys = {b.key for b in at.download_button}
    assert {f"tx_fig_map-dl-trainability-tanh-L0-16px-figure.{f}" for f in MIMES} <= keys
    assert "400 × 300 px" in _texts(at)
    assert renders == []  # three page runs, nothing drawn: a figure is drawn when its button is clicked
    for fmt, (_, data) in offered.items():
        _check_bytes(fmt, data())
    assert Image.open(io.BytesIO(offered["png"][1]())).size == (400, 300)
    assert renders.count("map_figure") == 3  # the second PNG came from the remembered bytes


def test_impossible_size_is_said_and_offers_nothing(downloads):
    base = _tiny(seed=811)
    _compute(base, _levels(base, 1)[0])
    at = _open(base, _levels(base, 1), 0)
    at.number_input(key="tx_fig_w").set_value(40.0)
    at.number_input(key="tx_fig_h").set_value(40.0)
    downloads.clear()
    at.number_input(key="tx_fig_dpi").set_value(600).run()
    assert not at.exception, at.exception
    assert any("megapixels" in e.value for e in at.error)
    assert not _offered(downloads, "-figure")


def test_zoom_path_of_the_stored_levels_and_the_missing_ones_said(downloads, renders):
    base = _tiny(seed=812)
    path = _levels(base, 3)
    for view in path[:2]:
        _compute(base, view)
    at = _open(base, path, 1)  # level 2 was visited but is not computed (opened at level 1, nothing starts it)
    assert runs.status(default_store().key("grid", view_spec(base, path[2])[0])) is None
    text = _texts(at)
    assert "Levels 0, 1 side by side" in text and "Left out: level 2" in text
    offered = _offered(downloads, "zoom-path-L0-L1")
    assert {fmt: mime for fmt, (mime, _) in offered.items()} == MIMES
    assert "zoom_path_figure" not in renders
    for fmt, (_, data) in offered.items():
        _check_bytes(fmt, data())
    svg = offered["svg"][1]().decode()
    assert 'id="zoom-box-0"' in svg and 'id="zoom-box-1"' not in svg  # two panels, the outer one boxed
    assert "zoom levels 0, 1" in svg  # the title names the levels shown when one is left out


def test_one_level_has_no_zoom_path(downloads):
    base = _tiny(seed=811)
    _compute(base, _levels(base, 1)[0])
    at = _open(base, _levels(base, 1), 0)
    assert "needs two computed levels" in _texts(at)
    assert not _offered(downloads, "zoom-path")


def test_damaged_level_is_said_with_recompute(downloads):
    base = _tiny(seed=813)
    path = _levels(base, 2)
    outer = _compute(base, path[0])
    _compute(base, path[1])
    measure = default_store().path(outer, touch=False) / "measure.npy"
    data = measure.read_bytes()
    measure.write_bytes(data[: len(data) // 2])
    at = _open(base, path, 1)
    assert any(e.value.startswith("Level 0: this stored result is damaged") for e in at.error)
    assert any(b.key == "tx_fig_recompute_0" for b in at.button)
    assert "Left out: level 0" in _texts(at)


def test_video_is_shown_at_its_own_size_with_the_upscale_stated():
    base = _tiny(seed=814)
    path = _levels(base, 2)
    at = _open(base, path, 1)
    assert at.selectbox(key="tx_v_up").value * 128 == 512  # 128-px keyframes: 512 px offered first
    at.selectbox(key="tx_v_res").set_value(32).run()
    assert at.selectbox(key="tx_v_up").value == 16  # the output size kept when the keyframes change
    at.selectbox(key="tx_v_up").set_value(4)
    at.slider(key="tx_v_fpl").set_value(2).run()
    assert not at.exception, at.exception
    assert "32-px keyframes upscaled ×4 (nearest neighbour) to 128 px" in _texts(at)
    at.button(key="tx_v_go").click().run()
    (job,) = [s for s in runs.list_jobs() if s.kind == "zoom_video" and s.spec["grid"]["seed"] == 814]
    assert job.spec["upscale"] == 4 and list(job.spec["resolution"]) == [32, 32]
    assert runs.wait(job.id, timeout=TIMEOUT).state == "done"
    at.run()
    assert not at.exception, at.exception
    (video,) = at.get("video")
    assert video.proto.width_config.pixel_width == 128  # never stretched beyond its own pixels
