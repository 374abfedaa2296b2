"""The life of one job: submit it, read its status, cancel it, wait for it, delete it.

Lifecycle: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``. A job's id is its store key, so
asking twice for the same spec is one computation, and a stored result reads as done without any work.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

from runs import kinds, records, schedule
from runs.records import ACTIVE, JobStatus


#: Names an option may not take: the task's own arguments, and what the worker itself passes.
RESERVED_OPTIONS = ("spec", "out_dir", "progress", "cancel", "sources")
MAX_OPTIONS_BYTES = 4096  # options travel in status.json, which every status read parses


def check_options(options: Any) -> dict:
    """``options`` as a plain JSON table, or ``ValueError("options: …")``: string keys that are Python names
    (each becomes a keyword argument of the task), JSON values, at most :data:`MAX_OPTIONS_BYTES` as JSON."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"options: must be a dict of keyword arguments, got {type(options).__name__}")
    for name in options:
        if not isinstance(name, str) or not name.isidentifier() or len(name) > 64:
            raise ValueError(f"options: keys must be Python names of at most 64 characters, got {str(name)[:80]!r}")
        if name in RESERVED_OPTIONS:
            raise ValueError(f"options: {name!r} is set by the job runner itself, not an option")
    try:
        text = json.dumps(options, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"options: values must be JSON (strings, finite numbers, lists, tables), got {exc}") from None
    if len(text.encode()) > MAX_OPTIONS_BYTES:
        raise ValueError(f"options: at most {MAX_OPTIONS_BYTES} bytes as JSON, got {len(text.encode())}")
    return json.loads(text)


def submit(kind: str, spec: Any, options: dict | None = None, *, extra: str = "", resume: bool = False) -> str:
    """Run ``spec`` as a ``kind`` job in the background; return its id (== the store key).

    Already in the store: nothing is run (the job reads as done). Already queued or running: the same id is
    returned and no second process starts. An unknown ``kind`` gives a job that shows ``failed`` with a message
    naming the known kinds. ``resume=True`` seeds the run's ``out_dir`` with this job's :func:`partial_dir`.
    ``options`` (e.g. ``{"scheduler": "tcp://host:8786"}``) say *how* to compute, never *what*: they are kept
    in the job record, not in the key, and the worker passes each one to the task only when the task declares a
    keyword parameter of that name (see :func:`check_options`). A job already queued or running keeps its own.
    """
    options = check_options(options)
    schedule.reap()
    st = records.store()
    key = st.key(kind, spec, extra)
    if st.has(key):
        return key
    jd = records.job_dir(st, key)
    with records.registry_lock(st):
        rec = records.read(jd)
        if rec is not None:
            rec = schedule.refresh_locked(st, jd, rec)
            if rec.get("state") in ACTIVE:
                return key
        if st.has(key):
            return key
        jd.mkdir(parents=True, exist_ok=True)
        for name in ("cancel", "events.jsonl", "traceback.txt"):
            (jd / name).unlink(missing_ok=True)
        known = kinds.get(kind)
        now = time.time()
        new = {
            "id": key, "kind": kind, "spec": spec.to_dict(), "extra": extra, "spec_class": type(spec).__name__,
            # the references travel with the job, so a worker finds a kind registered only in this process
            "task": {"spec": known.spec, "task": known.task} if known else None, "resume": bool(resume),
            "options": options,
            "state": "queued", "fraction": 0.0, "message": "", "info": None,
            "created": now, "started": None, "finished": None, "pid": None, "pid_start": None, "out_dir": None,
        }
        if known is None:
            new.update(state="failed", finished=now,
                       message=f"unknown job kind {kind!r} (known: {', '.join(sorted(kinds.KINDS))})")
        records.write(jd, new)
        if known is not None:
            schedule.schedule_locked(st)
    return key


def status(job_id: str) -> JobStatus | None:
    """The job's current state (None when neither a job record nor a stored result has this id).

    Reading status is also what notices a dead worker (-> failed, "interrupted"), finishes a stuck cancel, and
    starts queued jobs when slots are free.
    """
    schedule.reap()
    st = records.store()
    jd = records.job_dir(st, job_id)
    rec = records.read(jd)
    if rec is not None and rec.get("state") in ACTIVE:
        with records.registry_lock(st):
            rec = records.read(jd) or rec
            rec = schedule.refresh_locked(st, jd, rec)
            if rec.get("state") == "queued":
                schedule.schedule_locked(st)
                rec = records.read(jd) or rec
    return records.to_status(st, job_id, rec)


def cancel(job_id: str, wait: float = 0.0) -> JobStatus | None:
    """Ask a job to stop. A queued job is cancelled at once; a running one gets the cancel flag (and is
    ended if it does not stop within ``$FRACTAL_LAB_CANCEL_GRACE_S``). ``wait`` > 0 blocks up to that many
    seconds for the job to reach a final state. Cancelling a finished job does nothing."""
    st = records.store()
    jd = records.job_dir(st, job_id)
    with records.registry_lock(st):
        rec = records.read(jd)
        if rec is None:
            return status(job_id)
        rec = schedule.refresh_locked(st, jd, rec)
        if rec.get("state") == "queued":
            records.finish_locked(jd, rec, "cancelled", "cancelled before it started")
        elif rec.get("state") == "running":
            (jd / "cancel").touch()
    if wait > 0:
        return wait_for(job_id, wait)
    return status(job_id)


def wait_for(job_id: str, timeout: float | None = None, poll_s: float = 0.1) -> JobStatus | None:
    """Poll until the job is final (or ``timeout`` seconds passed); return its last status."""
    deadline = None if timeout is None else time.time() + timeout
    while True:
        st = status(job_id)
        if st is None or st.terminal:
            return st
        if deadline is not None and time.time() >= deadline:
            return st
        time.sleep(poll_s)


def wait(job_id: str, timeout: float | None = None) -> JobStatus | None:
    """Block until the job is done/failed/cancelled or ``timeout`` seconds pass; return the last status
    (check ``.state``: it is still queued/running when the timeout hit)."""
    return wait_for(job_id, timeout)


def delete(job_id: str) -> bool:
    """Forget a job and its result: stop its worker (at once), remove the job record and the store entry."""
    st = records.store()
    jd = records.job_dir(st, job_id)
    found = False
    with records.registry_lock(st):
        rec = records.read(jd)
        if rec is not None:
            found = True
            if rec.get("state") == "running" and records.worker_alive(rec):
                schedule.kill(rec.get("pid"))
            out = records.working_folder(jd, rec)
            if out is not None and out.parent != jd:  # a working folder in tmp/ (older versions)
                shutil.rmtree(out, ignore_errors=True)
        if jd.exists():
            found = True
            trash = st.new_temp_dir(f"trash-job-{job_id}")
            os.rename(jd, trash / "job")
            shutil.rmtree(trash, ignore_errors=True)
        found = st.delete(job_id) or found
        schedule.schedule_locked(st)
    return found
