"""Shared by the job-runner tests: a fresh store and job registry per test, and no stray workers after it."""

from __future__ import annotations

import pytest

import runs
from tests import runs_fixture_tasks as fx


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fresh store/registry per test; every worker still alive at the end is killed (no strays)."""
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "store"))
    monkeypatch.setenv("FRACTAL_LAB_MAX_JOBS", "2")
    monkeypatch.setenv("FRACTAL_LAB_CANCEL_GRACE_S", "1")
    kind = fx.register()
    yield kind
    for st in runs.list_jobs():
        if st.active:
            runs.delete(st.id)
