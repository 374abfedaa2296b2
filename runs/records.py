"""A job's record on disk, readable by any process (page, CLI, worker, test).

A job must outlive the Streamlit script run, the browser tab and the session that started it, so everything
about it is a file under the store root::

    jobs/<id>/status.json     the job's state, written atomically (temp file + os.replace)
    jobs/<id>/events.jsonl    one line per progress() call that carried an info dict: {"t", "fraction", "info"}
    jobs/<id>/cancel          present = cancel requested
    jobs/<id>/worker.log      the worker's stdout/stderr;  jobs/<id>/traceback.txt  the full traceback
    jobs/<id>/work/           the running worker's working folder (its checkpoints); committed by one rename
    jobs/<id>/partial/        what a cancelled, failed or killed run left in its working folder
    jobs/.lock                fcntl.flock around every change of state (submit, schedule, finish)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

from cache import Store, default_store, exclusive_lock, pid_alive
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
    options: dict | None = None  # how the job was asked to run (runs.submit's options), never part of its id

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


def registry_lock(st: Store):
    return exclusive_lock(jobs_root(st) / ".lock")


def read(jd: Path) -> dict | None:
    """The job's record; None when there is none or it is unreadable (not a JSON table)."""
    try:
        rec = json.loads((jd / "status.json").read_bytes())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None


def write(jd: Path, rec: dict, fsync: bool = True) -> None:
    write_json_atomic(jd / "status.json", rec, fsync=fsync)


def all_records(st: Store) -> list[tuple[Path, dict]]:
    out = []
    for jd in jobs_root(st).iterdir():
        if jd.is_dir() and not jd.name.startswith(".") and _valid_id(st, jd.name):
            rec = read(jd)
            if rec is not None:
                out.append((jd, rec))
    return out


def _valid_id(st: Store, name: str) -> bool:
    try:
        st.check_key(name)
    except ValueError:
        return False
    return True


def work_dir(jd: Path) -> Path:
    """A job's working folder: inside its job folder (never in the store's ``tmp/``, which any commit cleans),
    so a worker killed mid-run leaves its checkpoint for :func:`salvage` to keep as ``partial/``."""
    return jd / "work"


def proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/pid/stat): tells a reused pid from our worker."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_alive(rec: dict) -> bool:
    pid = rec.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return False
    if not pid_alive(pid):
        return False
    expected = rec.get("pid_start")
    return expected is None or proc_start_time(pid) in (None, expected)


def working_folder(jd: Path, rec: dict) -> Path | None:
    """The run's working folder named in its record, if it is one a worker makes (its job's ``work/``, or a
    folder in the store's ``tmp/`` from an older version): a damaged record never points salvage elsewhere."""
    out = rec.get("out_dir")
    if not isinstance(out, str) or not out:
        return None
    p = Path(out)
    return p if p.parent in (jd, jd.parent.parent / "tmp") and p.name not in ("", ".", "..", "partial") else None


def live_folder(jd: Path, rec: dict | None) -> Path | None:
    """The working folder of a job that is running now (where its task writes live snapshots), else None."""
    if not isinstance(rec, dict) or rec.get("state") != "running" or not worker_alive(rec):
        return None
    out = working_folder(jd, rec)
    return out if out is not None and out.is_dir() and not out.is_symlink() else None


def salvage(jd: Path, rec: dict) -> bool:
    """Keep a dead run's non-empty working folder as ``partial/`` (replacing an older one); drop an empty one."""
    partial = jd / "partial"
    for out in dict.fromkeys(p for p in (working_folder(jd, rec), work_dir(jd)) if p is not None):
        if not out.is_dir() or out.is_symlink():
            continue
        if any(out.iterdir()):
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
            try:
                os.rename(out, partial)
            except OSError:
                shutil.copytree(out, partial, dirs_exist_ok=True)
                shutil.rmtree(out, ignore_errors=True)
        else:
            shutil.rmtree(out, ignore_errors=True)
    return partial.is_dir()


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


def _num(value: object) -> float | None:
    """A finite number from a record field (a damaged or hand-edited record may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _text(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _table(value: object) -> dict | None:
    return value if isinstance(value, dict) else None


def _stored_status(st: Store, job_id: str, rec: dict | None) -> JobStatus | None:
    """A job whose stored folder is there but unreadable as an entry (its record.json is damaged): failed, with
    the reason; submitting again recomputes it and replaces the folder."""
    why = st.damage(job_id)
    if why is None:
        return None
    rec = rec or {}
    return JobStatus(
        id=job_id, kind=_text(rec.get("kind")) or job_id.rsplit("-", 1)[0], state="failed",
        message=f"stored result is damaged ({why}): submit again to recompute",
        created=_num(rec.get("created")), started=_num(rec.get("started")), finished=_num(rec.get("finished")),
        spec=_table(rec.get("spec")), has_partial=(job_dir(st, job_id) / "partial").is_dir(),
    )


def to_status(st: Store, job_id: str, rec: dict | None) -> JobStatus | None:
    """The :class:`JobStatus` of a job record and/or a store entry (a stored result always reads as done; a
    stored folder whose record is damaged reads as failed, with the reason)."""
    stored = st.record(job_id)
    jd = job_dir(st, job_id)
    has_partial = (jd / "partial").is_dir()
    if rec is not None and not isinstance(rec, dict):
        rec = None
    if rec is None and stored is None:
        return _stored_status(st, job_id, None)
    if stored is not None and (rec is None or rec.get("state") not in ACTIVE):
        rec = rec or {}
        size = _num(stored.get("size"))
        return JobStatus(
            id=job_id, kind=_text(stored.get("kind")) or job_id.rsplit("-", 1)[0], state="done", fraction=1.0,
            eta_s=0.0, message="", created=_num(rec.get("created")) or _num(stored.get("created")),
            started=_num(rec.get("started")) or _num(stored.get("started")),
            finished=_num(rec.get("finished")) or _num(stored.get("finished")) or _num(stored.get("created")),
            spec=_table(stored.get("spec")) or _table(rec.get("spec")), info=_table(rec.get("info")),
            elapsed_s=_num(stored.get("elapsed_s")), pid=None, has_result=True, has_partial=has_partial,
            size=int(size) if size is not None else None,
            options=_table(rec.get("options")) or _table(stored.get("options")),
        )
    assert rec is not None
    state = _text(rec.get("state"), "failed")
    state = state if state in STATES else "failed"
    message = _text(rec.get("message"))
    if state == "done":  # the job finished but its result has since been evicted, deleted or damaged
        damaged = _stored_status(st, job_id, rec)
        if damaged is not None:
            return damaged
        state, message = "failed", "result no longer in the store (evicted or deleted): submit again to recompute"
    fraction = min(1.0, max(0.0, _num(rec.get("fraction")) or 0.0))
    info = _table(rec.get("info"))
    if state == "running":  # status.json is rewritten at most every 0.25 s; the event log is never behind
        last = last_event(jd / "events.jsonl")
        last_fraction = _num(last.get("fraction")) if isinstance(last, dict) else None
        if last_fraction is not None and last_fraction >= fraction:
            fraction, info = min(1.0, last_fraction), _table(last.get("info"))
    started, finished = _num(rec.get("started")), _num(rec.get("finished"))
    elapsed = None
    if started:
        elapsed = (finished or time.time()) - started
    eta = None
    if state == "running" and elapsed is not None and fraction > 0:
        eta = max(0.0, elapsed * (1.0 - fraction) / fraction)
    if state == "running" and (jd / "cancel").exists():
        message = message or "cancelling…"
    pid = rec.get("pid")
    return JobStatus(
        id=job_id, kind=_text(rec.get("kind")), state=state, fraction=fraction, eta_s=eta, message=message,
        created=_num(rec.get("created")), started=started, finished=finished, spec=_table(rec.get("spec")),
        info=info, elapsed_s=elapsed, pid=pid if state == "running" and isinstance(pid, int) else None,
        has_result=False, has_partial=has_partial, size=None, options=_table(rec.get("options")),
    )
