"""AppTest for the home page: a card per page of ui.nav.PAGES, and a sidebar whose first entry is "Home"."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui import nav

ROOT = Path(__file__).resolve().parents[2]


def test_home_has_a_card_per_page_and_a_titled_sidebar():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    sidebar = [el.proto.label for el in at.sidebar.get("page_link")]
    assert sidebar == [nav.HOME.title] + [p.title for p in nav.PAGES] and sidebar[0] != "app"
    cards = sorted((el.proto.label, el.proto.page) for el in at.main.get("page_link"))  # the tree lists by column
    assert cards == sorted((p.title, p.url_path) for p in nav.PAGES)
    captions = [c.value for c in at.caption]
    assert all(p.description in captions for p in nav.PAGES)


def test_streamlits_own_page_list_is_hidden():
    """Streamlit would title the home page "app" (after the file); the config hides its list for ui.nav's."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showSidebarNavigation"] is False


def _how_it_works(at: AppTest) -> str:
    expanders = [e for e in at.main.get("expander") if e.label == "How it works"]
    assert len(expanders) == 1
    return " ".join(m.value for m in expanders[0].get("markdown"))


def test_how_it_works_names_the_store_this_server_uses(tmp_path, monkeypatch):
    """With FRACTAL_LAB_CACHE set, the home page names that folder, not the default cache/data/."""
    elsewhere = tmp_path / "results elsewhere"
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(elsewhere))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    text = _how_it_works(at)
    assert f"`{elsewhere}`" in text and "cache/data" not in text and "set by `FRACTAL_LAB_CACHE`" in text
    monkeypatch.delenv("FRACTAL_LAB_CACHE")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    default = str(ROOT / "cache" / "data")
    assert f"`{default}`" in _how_it_works(at) and "Set `FRACTAL_LAB_CACHE`" in _how_it_works(at)
