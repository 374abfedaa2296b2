"""Shared by the job-runner tests: a fresh store and job registry per test, and no stray workers after it."""

from __future__ import annotations

import time

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


def wait_state(job_id, states, timeout=30.0):
    """The job's status once its state is one of ``states``; AssertionError after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = runs.status(job_id)
        if st is not None and st.state in states:
            return st
        time.sleep(0.05)
    raise AssertionError(f"{job_id} never reached {states}: {runs.status(job_id)}")
