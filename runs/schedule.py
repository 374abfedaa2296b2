"""Which jobs run now: at most ``$FRACTAL_LAB_MAX_JOBS`` worker processes, the oldest queued job next, and
the truth about a worker that died or will not stop.

Nothing polls in the background: whoever reads a status, submits, or finishes a job (under the registry lock)
notices dead workers and starts queued jobs, so a page that polls keeps the queue moving.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cache import Store, pid_alive
from engine.settings import env_float, env_int
from runs import records

REPO_ROOT = Path(__file__).resolve().parent.parent
HARD_KILL_EXTRA_S = 5.0  # a status reader SIGKILLs a worker still alive this long after the grace period

# Workers started by this process; polled so finished ones are reaped instead of lingering as zombies.
_CHILDREN: list[subprocess.Popen] = []


def max_jobs() -> int:
    """How many jobs may run at once: ``$FRACTAL_LAB_MAX_JOBS`` or the number of cores."""
    return env_int("FRACTAL_LAB_MAX_JOBS", max(1, os.cpu_count() or 1), 1, 4096)


def cancel_grace_s() -> float:
    """Seconds a task has to stop after a cancel request before its worker ends itself."""
    return env_float("FRACTAL_LAB_CANCEL_GRACE_S", 3.0, 0.1, 3600.0)


def reap() -> None:
    for child in list(_CHILDREN):
        if child.poll() is not None:
            _CHILDREN.remove(child)


def kill(pid: int | None, wait_s: float = 3.0) -> None:
    if not pid:
        return
    try:
        # A worker we started leads its own process group (start_new_session): take its children with it. A
        # worker started by hand from a shell does not; then only the process itself is killed.
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    deadline = time.time() + wait_s
    while time.time() < deadline:
        reap()
        if not pid_alive(pid):
            return
        time.sleep(0.02)


def refresh_locked(st: Store, jd: Path, rec: dict) -> dict:
    """Turn a running record whose worker is gone (or stuck after cancel) into its true final state."""
    if rec.get("state") != "running":
        return rec
    cancel_file = jd / "cancel"
    alive = records.worker_alive(rec)
    if alive and cancel_file.exists():
        try:
            asked = cancel_file.stat().st_mtime
        except OSError:
            asked = time.time()
        if time.time() - asked > cancel_grace_s() + HARD_KILL_EXTRA_S:
            kill(rec.get("pid"))
            alive = records.worker_alive(rec)
            if not alive:
                return records.finish_locked(jd, rec, "cancelled", "cancelled (worker killed after not stopping)")
    if alive:
        return rec
    if st.has(rec["id"]):
        return records.finish_locked(jd, dict(rec, fraction=1.0), "done", "")
    if cancel_file.exists():
        return records.finish_locked(jd, rec, "cancelled", "cancelled")
    message = f"interrupted: worker process {rec.get('pid')} ended without finishing (killed?)"
    last = records.last_log_line(jd, rec.get("log_offset") or 0)
    if last:
        message += f"; its last output: {last}"
    return records.finish_locked(jd, rec, "failed", message)


def schedule_locked(st: Store) -> None:
    """Start the oldest queued jobs while fewer than :func:`max_jobs` are running. Call with the lock held."""
    recs = [(jd, refresh_locked(st, jd, rec)) for jd, rec in records.all_records(st)]
    running = sum(1 for _, rec in recs if rec.get("state") == "running")
    queued = sorted((r for r in recs if r[1].get("state") == "queued"), key=lambda r: r[1].get("created") or 0)
    for jd, rec in queued[: max(0, max_jobs() - running)]:
        start_worker(st, jd, rec)


def start_worker(st: Store, jd: Path, rec: dict) -> None:
    """``python -m runs run <id>`` in its own session, so it outlives the script run that submitted it."""
    env = dict(os.environ)
    env["FRACTAL_LAB_CACHE"] = str(st.root)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(jd / "worker.log", "ab") as log:
        log_offset = log.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "runs", "run", rec["id"]],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    _CHILDREN.append(proc)
    rec = dict(rec, state="running", pid=proc.pid, pid_start=records.proc_start_time(proc.pid),
               started=time.time(), log_offset=log_offset)
    records.write(jd, rec)
