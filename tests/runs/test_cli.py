"""``python -m runs ...``: the shell side of the job runner, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import runs
from tests.runs_fixture_tasks import SleepSpec

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runs", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ))


def test_cli_list_status_cancel(env):
    job = runs.submit(env, SleepSpec(steps=1, step_s=0.0, tag="cli"))
    assert runs.wait(job, 30).state == "done"
    out = _cli("list")
    assert out.returncode == 0 and job in out.stdout and "done" in out.stdout
    out = _cli("status", job)
    assert out.returncode == 0 and json.loads(out.stdout)["state"] == "done"
    assert _cli("status", "sleep-nothing").returncode == 1
    assert _cli("cancel", job).returncode == 0


def test_cli_list_shows_every_job_newest_first_and_delete_forgets(env):
    assert _cli("list").stdout == ""  # an empty registry lists nothing
    first = runs.submit(env, SleepSpec(steps=1, step_s=0.0, tag="first"))
    assert runs.wait(first, 30).state == "done"
    failed = runs.submit(env, SleepSpec(steps=2, step_s=0.0, fail_at=1, tag="second"))
    assert runs.wait(failed, 30).state == "failed"
    out = _cli("list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == [failed, first]
    assert lines[0].split()[1] == "failed" and "RuntimeError: boom at step 1" in lines[0]
    assert lines[1].split()[1] == "done" and "100.0%" in lines[1]
    assert _cli("delete", first).returncode == 0
    assert runs.status(first) is None
    assert [ln.split()[0] for ln in _cli("list").stdout.splitlines()] == [failed]
    assert _cli("delete", first).returncode == 1  # nothing left to forget


def test_cli_run_of_an_unknown_job_says_so(env):
    out = _cli("run", "sleep-0000000000000000dead")
    assert out.returncode == 2 and "no job 'sleep-0000000000000000dead'" in out.stderr


def test_cli_usage_errors_exit_2(env):
    assert _cli().returncode == 2
    assert _cli("frobnicate").returncode == 2
    assert _cli("status").returncode == 2  # the id is required
