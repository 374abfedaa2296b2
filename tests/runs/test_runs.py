"""The job runner: real worker processes running the tiny SleepSpec task from tests/runs_fixture_tasks.py."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

import runs
from cache import default_store, pid_alive
from tests import runs_fixture_tasks as fx
from tests.runs_fixture_tasks import SleepSpec


from tests.runs.conftest import wait_state as _wait_state


def _gone(pid, timeout=10.0):
    """True once ``pid`` has exited (a worker writes its final state a moment before its process ends)."""
    deadline = time.time() + timeout
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


def _wait_events(job_id, n, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(runs.events(job_id)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{job_id}: fewer than {n} events: {runs.status(job_id)}")


def test_same_spec_computed_once(env, tmp_path):
    counter = tmp_path / "runs.txt"
    spec = SleepSpec(steps=4, step_s=0.1, scale=2.0, counter_file=str(counter))
    a = runs.submit(env, spec)
    b = runs.submit(env, spec)  # while queued/running: the same job, no second process
    assert a == b == default_store().key(env, spec)
    st = runs.wait(a, timeout=30)
    assert st.state == "done" and st.fraction == 1.0 and st.has_result
    c = runs.submit(env, spec)  # already in the store: done at once
    assert c == a and runs.status(c).state == "done"
    assert len(counter.read_text().splitlines()) == 1
    np.testing.assert_array_equal(default_store().load_arrays(a)["values"], np.arange(4) * 2.0)
    rec = default_store().record(a)
    assert rec["kind"] == env and rec["spec"] == spec.to_dict() and rec["elapsed_s"] >= 0.4
    assert (runs.result_dir(a) / "spec.json").exists()
    assert runs.events(a) == [{"step": i, "loss": 1.0 / (i + 1)} for i in range(4)]
    assert runs.events(a, since=3) == [{"step": 3, "loss": 0.25}]
    assert [e["fraction"] for e in runs.event_log(a)] == [0.25, 0.5, 0.75, 1.0]


def test_running_status_has_fraction_and_eta(env):
    job = runs.submit(env, SleepSpec(steps=20, step_s=0.1))
    _wait_events(job, 3)
    st = runs.status(job)
    assert st.state == "running" and st.pid and pid_alive(st.pid)
    assert 0 < st.fraction < 1 and st.eta_s is not None and st.eta_s > 0 and st.info["step"] >= 2
    runs.cancel(job)
    assert runs.wait(job, 20).state == "cancelled"


def test_cancel_stops_process_and_keeps_partial_for_resume(env, tmp_path):
    counter = tmp_path / "runs.txt"
    spec = SleepSpec(steps=40, step_s=0.05, checkpoint=True, counter_file=str(counter))
    job = runs.submit(env, spec)
    _wait_events(job, 3)
    pid = runs.status(job).pid
    st = runs.cancel(job, wait=20)
    assert st.state == "cancelled"
    assert _gone(pid)
    assert runs.result_dir(job) is None and not default_store().has(job)
    partial = runs.partial_dir(job)
    assert partial is not None and int((partial / "checkpoint.txt").read_text()) >= 3
    reached = int((partial / "checkpoint.txt").read_text())
    # resubmitting with resume=True gives the task its checkpoint back; it finishes from there
    assert runs.submit(env, spec, resume=True) == job
    st = runs.wait(job, 30)
    assert st.state == "done"
    assert int((runs.result_dir(job) / "resumed_from.txt").read_text()) == reached
    assert runs.partial_dir(job) is None  # a successful run drops the partial
    assert len(counter.read_text().splitlines()) == 2


def test_cancel_of_task_ignoring_it_ends_the_process(env):
    job = runs.submit(env, SleepSpec(steps=100, step_s=0.2, ignore_cancel=True))
    _wait_events(job, 1)
    pid = runs.status(job).pid
    t0 = time.time()
    runs.cancel(job)
    st = _wait_state(job, ("cancelled",), timeout=20)
    assert "cancel" in st.message
    assert time.time() - t0 < 15
    assert _gone(pid)
    assert not default_store().has(job)


def test_kill_9_leaves_store_consistent_and_job_not_running(env):
    store = default_store()
    spec = SleepSpec(steps=50, step_s=0.05)
    job = runs.submit(env, spec)
    _wait_events(job, 2)
    pid = runs.status(job).pid
    os.kill(pid, signal.SIGKILL)
    st = _wait_state(job, ("failed",), timeout=20)
    assert "interrupted" in st.message
    assert not store.has(job) and store.entries() == []
    assert not any(p.name.startswith(f"job-{job}") for p in store.tmp_dir.iterdir())  # working folder gone
    # the job can simply be submitted again and completes
    assert runs.submit(env, spec) == job
    assert runs.wait(job, 30).state == "done" and store.has(job)


def test_worker_crash_reports_its_last_output(env):
    job = runs.submit(env, SleepSpec(steps=5, step_s=0.01, hard_exit_at=1))
    st = _wait_state(job, ("failed",), timeout=30)
    assert "interrupted" in st.message and "simulated abort at step 1" in st.message
    assert not default_store().has(job)


def test_queue_beyond_max_jobs(env, monkeypatch):
    monkeypatch.setenv("FRACTAL_LAB_MAX_JOBS", "1")
    ids = [runs.submit(env, SleepSpec(steps=3, step_s=0.1, tag=str(i))) for i in range(3)]
    states = [runs.status(i).state for i in ids]
    assert states[0] == "running" and states[1:] == ["queued", "queued"]
    for i in ids:
        assert runs.wait(i, 60).state == "done"
    sts = sorted((runs.status(i) for i in ids), key=lambda s: s.created)
    recs = [default_store().record(s.id) for s in sts]
    for earlier, later in zip(recs, recs[1:]):  # never two at once: each started after the previous finished
        assert later["started"] >= earlier["finished"] - 1e-3


def test_cancel_queued_job(env, monkeypatch):
    monkeypatch.setenv("FRACTAL_LAB_MAX_JOBS", "1")
    first = runs.submit(env, SleepSpec(steps=30, step_s=0.05, tag="first"))
    second = runs.submit(env, SleepSpec(steps=2, tag="second"))
    assert runs.status(second).state == "queued"
    assert runs.cancel(second).state == "cancelled"
    runs.cancel(first, wait=20)
    assert runs.status(second).state == "cancelled"


def test_failing_task_shows_its_error(env):
    job = runs.submit(env, SleepSpec(steps=5, step_s=0.01, fail_at=2))
    st = runs.wait(job, 30)
    assert st.state == "failed"
    assert st.message == "RuntimeError: boom at step 2"
    store = default_store()
    tb = (store.root / "jobs" / job / "traceback.txt").read_text()
    assert "Traceback" in tb and "run_to_dir" in tb
    assert not store.has(job)


def test_unknown_kind_and_unbuildable_spec_fail_clearly(env):
    st = runs.status(runs.submit("no_such_kind", SleepSpec()))
    assert st.state == "failed" and "unknown job kind 'no_such_kind'" in st.message
    runs.register_task("missing_module", "engine.no_such_module", "X", "run_to_dir")
    st = runs.wait(runs.submit("missing_module", SleepSpec()), 30)
    assert st.state == "failed" and "could not be imported" in st.message
    # the worker rebuilds the spec from JSON with the registered class: a mismatch is reported, not a traceback
    runs.register_task("wrong_spec", fx.MODULE, "SleepSpec", "run_to_dir")
    from engine.specs import SpecMixin
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class OtherSpec(SpecMixin):
        speed: int = 3

    st = runs.wait(runs.submit("wrong_spec", OtherSpec()), 30)
    assert st.state == "failed" and "could not be rebuilt as SleepSpec" in st.message and "speed" in st.message


def test_delete_list_and_runs(env):
    store = default_store()
    a = runs.submit(env, SleepSpec(steps=1, step_s=0.0, tag="a"))
    assert runs.wait(a, 30).state == "done"
    b = runs.submit(env, SleepSpec(steps=1, step_s=0.0, tag="b"))
    assert runs.wait(b, 30).state == "done"
    loose = store.key("grid", SleepSpec(tag="loose"))  # a result written without a job (e.g. by a CLI)
    store.put(loose, files={"image.png": b"png"}, record={"spec": {"tag": "loose"}, "created": time.time() + 1})
    assert [s.id for s in runs.list_jobs()] == [b, a]
    found = runs.list_runs()
    assert [s.id for s in found] == [loose, b, a] and found[0].state == "done" and found[0].kind == "grid"
    assert runs.delete(a)
    assert runs.status(a) is None and not store.has(a) and not (store.root / "jobs" / a).exists()
    assert runs.delete(loose) and runs.status(loose) is None
    running = runs.submit(env, SleepSpec(steps=100, step_s=0.1, tag="run"))
    _wait_events(running, 1)
    pid = runs.status(running).pid
    assert runs.delete(running) and _gone(pid) and runs.status(running) is None
    assert runs.clear_all() == 1 and runs.list_runs() == [] and store.entries() == []


def test_evicted_result_reads_as_failed_and_resubmits(env):
    spec = SleepSpec(steps=1, step_s=0.0)
    job = runs.submit(env, spec)
    assert runs.wait(job, 30).state == "done"
    default_store().delete(job)
    st = runs.status(job)
    assert st.state == "failed" and "no longer in the store" in st.message
    assert runs.submit(env, spec) == job and runs.wait(job, 30).state == "done"


def test_spec_summary():
    text = runs.spec_summary({"preset": "tanh", "lr": 0.0012345, "box": [1.0, 2.0], "inner": {"a": 1}})
    assert text == "preset=tanh, lr=0.001234, box=[1, 2], inner.a=1"
    assert runs.spec_summary(None) == ""
    long = runs.spec_summary({f"f{i}": i for i in range(20)}, max_items=3)
    assert long.endswith("(+17)")


def test_frozen_worker_is_killed_after_cancel(env, monkeypatch):
    """A worker that cannot even run its watchdog (SIGSTOP here; a C call holding the GIL in real life) is
    SIGKILLed by the next status read once the grace period and a margin have passed."""
    monkeypatch.setattr(runs.schedule, "HARD_KILL_EXTRA_S", 0.5)
    job = runs.submit(env, SleepSpec(steps=100, step_s=0.1, tag="frozen"))
    _wait_events(job, 1)
    pid = runs.status(job).pid
    os.kill(pid, signal.SIGSTOP)
    runs.cancel(job)
    st = _wait_state(job, ("cancelled",), timeout=20)
    assert "killed" in st.message
    assert _gone(pid) and not default_store().has(job)
