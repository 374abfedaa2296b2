"""Shared by the store tests: a fresh store per test, at its default limit."""

from __future__ import annotations

import pytest

from cache.store import default_store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "store"))
    monkeypatch.delenv("FRACTAL_LAB_CACHE_LIMIT_GB", raising=False)
    return default_store()
