"""ui.nav: the one list of pages and which page re-opens which kind of run."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.source_util import page_icon_and_name

from runs import kinds
from ui import nav, state

ROOT = Path(__file__).resolve().parents[2]


def test_every_page_file_exists_and_its_url_path_is_streamlits():
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
    assert sorted(p.file for p in nav.PAGES) == files  # every page is listed once, and only pages that exist
    for page in nav.PAGES:
        assert page_icon_and_name(ROOT / page.file)[1] == page.url_path  # the address people share
        assert page.title and page.icon.startswith(":material/") and page.description
    assert (ROOT / nav.HOME.file).is_file() and nav.HOME.title != "app"
    assert nav.page_of("pages/4_Runs.py") is nav.RUNS
    with pytest.raises(KeyError):
        nav.page_of("pages/9_Nothing.py")


def test_reopen_links():
    assert set(nav.REOPEN) == set(kinds.BUILT_IN)
    grid_cls = kinds.KINDS["grid"].spec_class()
    grid = grid_cls().to_dict()
    link = nav.reopen_link("grid", "grid-1", grid)
    assert link.page is nav.EXPLORER and link.query == state.spec_query(grid_cls, grid) and link.query
    video = nav.reopen_link("zoom_video", "zoom_video-1", {"grid": grid, "fps": 16})
    assert video.page is nav.EXPLORER and video.query == link.query  # the video's own grid, not its fields
    for kind, page in (("fractalnet_train", nav.FRACTALNET_LAB), ("kron_train", nav.KRONECKER_LAB)):
        run = nav.reopen_link(kind, f"{kind}-abc", {"anything": 1})
        assert run.page is page and run.query == {"run": f"{kind}-abc"}
    assert nav.reopen_link("sleep", "sleep-1", {}) is None  # a kind no page shows
    with pytest.raises(KeyError):
        nav.reopen_link("zoom_video", "zoom_video-2", {"fps": 16})  # a spec without its grid: the caller says so
