"""A job's record on disk, readable by any process (page, CLI, worker, test).

A job must outlive the Streamlit script run, the browser tab and the session that started it, so everything
about it is a file under the store root::

    jobs/<id>/status.json     the job's state, written atomically (temp file + os.replace)
    jobs/<id>/events.jsonl    one line per progress() call that carried an info dict: {"t", "fraction", "info"}
    jobs/<id>/cancel          present = cancel requested
    jobs/<id>/worker.log      the worker's stdout/stderr;  jobs/<id>/traceback.txt  the full traceback
    jobs/<id>/partial/        what a cancelled, failed or killed run left in its working folder
    jobs/.lock                fcntl.flock around every change of state (submit, schedule, finish)
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cache import Store, default_store, pid_alive
from engine.io import write_json_atomic

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
TERMINAL = ("done", "failed", "cancelled")


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """A snapshot of one job (or of a stored result that no job record describes any more)."""

    id: str
    kind: str
    state: str
    fraction: float = 0.0
    eta_s: float | None = None
    message: str = ""
    created: float | None = None
    started: float | None = None
    finished: float | None = None
    spec: dict | None = None
    info: dict | None = None
    elapsed_s: float | None = None
    pid: int | None = None
    has_result: bool = False
    has_partial: bool = False
    size: int | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def store() -> Store:
    return default_store()


def jobs_root(st: Store) -> Path:
    p = st.root / "jobs"
    p.mkdir(parents=True, exist_ok=True)
    return p


def job_dir(st: Store, job_id: str) -> Path:
    return jobs_root(st) / st.check_key(job_id)


@contextmanager
def registry_lock(st: Store) -> Iterator[None]:
    with open(jobs_root(st) / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read(jd: Path) -> dict | None:
    try:
        return json.loads((jd / "status.json").read_text())
    except (OSError, ValueError):
        return None


def write(jd: Path, rec: dict, fsync: bool = True) -> None:
    write_json_atomic(jd / "status.json", rec, fsync=fsync)


def all_records(st: Store) -> list[tuple[Path, dict]]:
    out = []
    for jd in jobs_root(st).iterdir():
        if jd.is_dir() and not jd.name.startswith("."):
            rec = read(jd)
            if rec is not None:
                out.append((jd, rec))
    return out


def proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/pid/stat): tells a reused pid from our worker."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_alive(rec: dict) -> bool:
    pid = rec.get("pid")
    if not pid_alive(pid):
        return False
    expected = rec.get("pid_start")
    return expected is None or proc_start_time(pid) in (None, expected)


def salvage(jd: Path, rec: dict) -> bool:
    """Keep a dead run's non-empty working folder as ``partial/`` (replacing an older one); drop an empty one."""
    out = rec.get("out_dir")
    if not out or not Path(out).is_dir():
        return (jd / "partial").is_dir()
    out = Path(out)
    if any(out.iterdir()):
        partial = jd / "partial"
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
        try:
            os.rename(out, partial)
        except OSError:
            shutil.copytree(out, partial, dirs_exist_ok=True)
            shutil.rmtree(out, ignore_errors=True)
        return True
    shutil.rmtree(out, ignore_errors=True)
    return (jd / "partial").is_dir()


def finish_locked(jd: Path, rec: dict, state: str, message: str = "") -> dict:
    """Write a final state (call with the registry lock held); a run that ended without a result keeps its
    working folder as ``partial/``."""
    rec = dict(rec)
    rec["state"] = state
    rec["message"] = message
    rec["finished"] = time.time()
    if state != "done":
        salvage(jd, rec)
    rec["out_dir"] = None
    write(jd, rec)
    return rec


def last_log_line(jd: Path, offset: int) -> str:
    """The last non-empty line this run wrote to worker.log (e.g. the error of a worker that crashed early)."""
    try:
        with open(jd / "worker.log", "rb") as fh:
            fh.seek(0, os.SEEK_END)
            start = max(offset, fh.tell() - 4096)
            fh.seek(start)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def last_event(path: Path) -> dict | None:
    """The last complete line of an events.jsonl, reading only its tail (training logs grow long)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def to_status(st: Store, job_id: str, rec: dict | None) -> JobStatus | None:
    """The :class:`JobStatus` of a job record and/or a store entry (a stored result always reads as done)."""
    stored = st.record(job_id)
    jd = job_dir(st, job_id)
    has_partial = (jd / "partial").is_dir()
    if rec is None and stored is None:
        return None
    if stored is not None and (rec is None or rec.get("state") not in ACTIVE):
        rec = rec or {}
        return JobStatus(
            id=job_id, kind=stored.get("kind") or job_id.rsplit("-", 1)[0], state="done", fraction=1.0,
            eta_s=0.0, message="", created=rec.get("created") or stored.get("created"),
            started=rec.get("started") or stored.get("started"),
            finished=rec.get("finished") or stored.get("finished") or stored.get("created"),
            spec=stored.get("spec") or rec.get("spec"), info=rec.get("info"),
            elapsed_s=stored.get("elapsed_s"), pid=None, has_result=True, has_partial=has_partial,
            size=stored.get("size"),
        )
    assert rec is not None
    state = rec.get("state", "failed")
    message = rec.get("message", "")
    if state == "done":  # the job finished but its result has since been evicted or deleted
        state, message = "failed", "result no longer in the store (evicted or deleted): submit again to recompute"
    fraction = float(rec.get("fraction") or 0.0)
    info = rec.get("info")
    if state == "running":  # status.json is rewritten at most every 0.25 s; the event log is never behind
        last = last_event(jd / "events.jsonl")
        if last is not None and float(last.get("fraction") or 0.0) >= fraction:
            fraction, info = float(last.get("fraction") or 0.0), last.get("info")
    started, finished = rec.get("started"), rec.get("finished")
    elapsed = None
    if started:
        elapsed = (finished or time.time()) - started
    eta = None
    if state == "running" and elapsed is not None and fraction > 0:
        eta = max(0.0, elapsed * (1.0 - fraction) / fraction)
    if state == "running" and (jd / "cancel").exists():
        message = message or "cancelling…"
    return JobStatus(
        id=job_id, kind=rec.get("kind", ""), state=state, fraction=fraction, eta_s=eta, message=message,
        created=rec.get("created"), started=started, finished=finished, spec=rec.get("spec"),
        info=info, elapsed_s=elapsed, pid=rec.get("pid") if state == "running" else None,
        has_result=False, has_partial=has_partial, size=None,
    )
