"""Job options: how to run (e.g. a Dask scheduler), kept in the job record and never in its id; the worker passes
each only to a task that declares it, plus the store's grids as ``sources``. And ``runs.live_dir``."""

from __future__ import annotations

import json
import time

import pytest

import runs
from cache import default_store
from runs.lifecycle import MAX_OPTIONS_BYTES
from tests.runs import options_tasks as ot
from tests.runs.conftest import wait_state
from tests.runs_fixture_tasks import SleepSpec


@pytest.mark.parametrize("bad, words", [
    ("tcp://x:1", "dict"),
    ({1: "a"}, "Python names"),
    ({"not a name": 1}, "Python names"),
    ({"sources": "x"}, "job runner"),
    ({"cancel": True}, "job runner"),
    ({"scheduler": {1, 2}}, "JSON"),
    ({"rate": float("nan")}, "JSON"),
    ({"blob": "x" * (MAX_OPTIONS_BYTES + 1)}, "bytes"),
])
def test_bad_options_are_named_errors_and_start_nothing(env, bad, words):
    spec = SleepSpec(steps=1, step_s=0.0, tag="bad-options")
    with pytest.raises(ValueError, match="options:") as err:
        runs.submit(env, spec, options=bad)
    assert words in str(err.value)
    assert runs.status(default_store().key(env, spec)) is None


def test_options_reach_only_a_task_that_declares_them_and_never_change_the_id(env):
    with_kind, without_kind = ot.register()
    spec = ot.OptSpec(tag="declared")
    job = runs.submit(with_kind, spec, options={"scheduler": "tcp://127.0.0.1:8786"})
    assert job == default_store().key(with_kind, spec)  # the id is the spec's key, options aside
    st = runs.wait(job, timeout=60)
    assert st.state == "done", st.message
    received = json.loads((runs.result_dir(job) / "received.json").read_text())
    assert received == {"scheduler": "tcp://127.0.0.1:8786", "sources": "StoredGrids",
                        "sources_root": str(default_store().root)}
    assert st.options == {"scheduler": "tcp://127.0.0.1:8786"}
    assert default_store().record(job)["options"] == {"scheduler": "tcp://127.0.0.1:8786"}
    # the same spec with other options is the same stored result: nothing runs again
    assert runs.submit(with_kind, spec, options={"scheduler": "tcp://10.0.0.1:8786"}) == job
    assert json.loads((runs.result_dir(job) / "received.json").read_text())["scheduler"] == "tcp://127.0.0.1:8786"

    # without options the declared keywords keep their defaults, and sources still comes from the store
    plain = runs.submit(with_kind, ot.OptSpec(tag="no options"))
    assert runs.wait(plain, timeout=60).state == "done"
    assert json.loads((runs.result_dir(plain) / "received.json").read_text())["scheduler"] is None

    # a task that declares neither is called with its four arguments, options or not
    other = runs.submit(without_kind, ot.OptSpec(tag="undeclared"), options={"scheduler": "tcp://127.0.0.1:8786"})
    st = runs.wait(other, timeout=60)
    assert st.state == "done", st.message
    assert json.loads((runs.result_dir(other) / "received.json").read_text()) == {"called": "plain"}


def test_a_running_job_keeps_its_options_when_submitted_again(env):
    with_kind, _ = ot.register()
    spec = ot.OptSpec(steps=40, step_s=0.05, tag="running")
    job = runs.submit(with_kind, spec, options={"scheduler": "tcp://127.0.0.1:1"})
    wait_state(job, ("running",))
    assert runs.submit(with_kind, spec, options={"scheduler": "tcp://127.0.0.1:2"}) == job
    assert runs.status(job).options == {"scheduler": "tcp://127.0.0.1:1"}
    assert runs.wait(job, timeout=60).state == "done"
    assert json.loads((runs.result_dir(job) / "received.json").read_text())["scheduler"] == "tcp://127.0.0.1:1"


def test_live_dir_is_the_working_folder_of_a_running_job_only(env):
    spec = SleepSpec(steps=40, step_s=0.05, tag="live")
    job = runs.submit(env, spec)
    assert runs.live_dir("sleep-no-such-job") is None
    wait_state(job, ("running",))
    deadline = time.time() + 30
    while (live := runs.live_dir(job)) is None and time.time() < deadline:
        time.sleep(0.02)  # the worker records its folder a moment after its process starts
    assert live is not None and live.is_dir() and live.name == "work"
    assert live.parent.name == job
    (live / "probe.txt").write_text("a live snapshot would sit here")
    assert runs.wait(job, timeout=60).state == "done"
    assert runs.live_dir(job) is None  # committed: the folder is now the stored result
    assert (runs.result_dir(job) / "probe.txt").exists()


def test_live_dir_is_none_for_a_cancelled_job(env):
    job = runs.submit(env, SleepSpec(steps=200, step_s=0.05, tag="live-cancel"))
    wait_state(job, ("running",))
    assert runs.cancel(job, wait=30).state == "cancelled"
    assert runs.live_dir(job) is None


def test_task_kwargs_never_repeat_the_workers_own_arguments(env):
    """A hand-edited or hostile record cannot make the worker pass progress, cancel or sources twice."""
    from runs.stored import StoredGrids
    from runs.worker import task_kwargs

    hostile = {"progress": 1, "out_dir": "/", "cancel": None, "sources": "x", "scheduler": "tcp://127.0.0.1:1",
               "unknown": 3}
    kwargs = task_kwargs(ot.with_options, hostile)
    assert set(kwargs) == {"scheduler", "sources"} and isinstance(kwargs["sources"], StoredGrids)
    assert kwargs["scheduler"] == "tcp://127.0.0.1:1"
    assert task_kwargs(ot.without_options, hostile) == {}
    assert task_kwargs(print, {"scheduler": "x"}) == {}  # a builtin: called with its four arguments only
