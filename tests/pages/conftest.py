"""Pages are opened inside the app (app.py, then switch_page): every page draws the sidebar from ui.nav, whose
links need the app's entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def open_page(page_file: str, timeout: float = 60, **query: str) -> AppTest:
    """An AppTest of ``page_file`` (e.g. ``"pages/4_Runs.py"``) with ``query`` as its link, not yet run."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.switch_page(page_file)
    for k, v in query.items():
        at.query_params[k] = v
    return at


def run_page(page_file: str, timeout: float = 120, **query: str) -> AppTest:
    """``open_page(...)`` run once, asserting the page raised nothing."""
    at = open_page(page_file, timeout, **query).run()
    assert not at.exception, [e.message[:300] for e in at.exception]
    return at


def page_texts(at: AppTest) -> str:
    """Every message the page shows (markdown, captions, errors, warnings, infos), one per line."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


@pytest.fixture
def fresh_store(tmp_path, monkeypatch):
    """An empty store for one test (``FRACTAL_LAB_CACHE`` in ``tmp_path``); jobs still running after it are deleted."""
    import runs
    from cache import default_store

    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "store"))
    yield default_store()
    for s in runs.list_jobs():
        if s.active:
            runs.delete(s.id)
