"""Background jobs: run a spec's task function in its own OS process, with progress, cancel and status on disk.

Why processes and files (not threads and ``st.session_state``): a Streamlit script run ends and re-runs on every
click, a browser reload starts a new session, and a second tab is another session. A job must outlive all of
them, so each job is a process started in its own session (``python -m runs run <id>``) and everything about it
lives in files under the store root, where any process (page, CLI, test) can read it.

Usage::

    import runs
    job_id = runs.submit("grid", spec)      # id == store key; already stored -> done at once, no work;
                                            # already queued/running -> the same id (one shared computation)
    st = runs.status(job_id)                # JobStatus: state, fraction, eta_s, message, info ...
    runs.events(job_id, since=0)            # the info dicts the task passed to progress(), in order
    runs.cancel(job_id); runs.wait(job_id, timeout=60); runs.result_dir(job_id); runs.delete(job_id)

Registry layout (under the store root)::

    jobs/<id>/status.json     the job's state, written atomically (temp file + os.replace)
    jobs/<id>/events.jsonl    one line per progress() call that carried an info dict: {"t", "fraction", "info"}
    jobs/<id>/cancel          present = cancel requested (the worker's ``cancel.is_set()`` looks for it)
    jobs/<id>/worker.log      the worker's stdout/stderr;  jobs/<id>/traceback.txt  the full traceback
    jobs/<id>/partial/        files a cancelled, failed or killed run left in its output folder (see below)
    jobs/.lock                fcntl.flock around every change of state (submit, schedule, finish)

Lifecycle: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``. At most
``$FRACTAL_LAB_MAX_JOBS`` (default ``os.cpu_count()``) run at once; when a worker ends it starts the oldest
queued job. A worker that dies without finishing (``kill -9``, out of memory) is noticed by whoever reads its
status next (pid liveness, zombies included): the job shows ``failed`` ("interrupted") and nothing partial is
in the store, because results enter the store only through :meth:`cache.Store.commit` (one atomic rename).

Cancel: :func:`cancel` creates the ``cancel`` file. The task sees ``cancel.is_set()`` and raises
``engine.errors.Cancelled``; if it has not stopped after ``$FRACTAL_LAB_CANCEL_GRACE_S`` seconds (default 3) the
worker's watchdog thread ends the process itself, and a status reader SIGKILLs a worker that is stuck even for
that. A task that *returns* after a cancel request is treated as cancelled too (its output may be incomplete).

Partial results and resume: the task writes into a working folder that the worker gives it (``out_dir``). If the
run ends without a result (cancelled, failed, killed) and that folder is not empty, it is kept as
``jobs/<id>/partial`` (:func:`partial_dir`) — e.g. a training checkpoint. ``submit(..., resume=True)`` seeds the
next run's ``out_dir`` with a copy of that partial folder, so a task that finds its own checkpoint there can
continue from it. A successful run removes the partial folder.

Task kinds: :data:`TASKS` maps a kind to ``(module, spec class name, function name)``; the worker imports them
lazily. :func:`register_task` adds a kind; the triple is stored in the job record so the worker finds it even
though it is a different process.
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from cache import Store, default_store, pid_alive, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parent.parent

TASKS: dict[str, tuple[str, str, str]] = {
    "grid": ("engine.trainability", "GridSpec", "run_to_dir"),
    "zoom_video": ("engine.video", "VideoSpec", "run_to_dir"),
    "fractalnet_train": ("engine.training", "TrainSpec", "run_to_dir"),
    "kron_train": ("engine.kronecker_net", "KronTrainSpec", "run_to_dir"),
}

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
TERMINAL = ("done", "failed", "cancelled")
STATUS_WRITE_EVERY_S = 0.25  # progress() rewrites status.json at most this often (events are appended each call)
HARD_KILL_EXTRA_S = 5.0  # a status reader SIGKILLs a worker still alive this long after the grace period

# Workers started by this process; polled so finished ones are reaped instead of lingering as zombies.
_CHILDREN: list[subprocess.Popen] = []


def register_task(kind: str, module: str, spec_cls_name: str, fn_name: str = "run_to_dir") -> None:
    """Make ``kind`` runnable: the worker will ``getattr(import_module(module), fn_name)(spec, out, ...)``.

    The triple is copied into each job's record at submit time, so registering in the submitting process is
    enough (the worker process does not need to repeat the call).
    """
    if not kind or not all(c.isalnum() or c in "_." for c in kind):
        raise ValueError(f"kind: must be a non-empty name of letters, digits, '_' or '.', got {kind!r}")
    TASKS[kind] = (module, spec_cls_name, fn_name)


def max_jobs() -> int:
    """How many jobs may run at once: ``$FRACTAL_LAB_MAX_JOBS`` or the number of cores."""
    value = os.environ.get("FRACTAL_LAB_MAX_JOBS", "").strip()
    if not value:
        return max(1, os.cpu_count() or 1)
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"FRACTAL_LAB_MAX_JOBS: {value!r} is not an integer (use 1 or more)") from None
    if n < 1:
        raise ValueError(f"FRACTAL_LAB_MAX_JOBS: must be >= 1, got {n}")
    return n


def cancel_grace_s() -> float:
    value = os.environ.get("FRACTAL_LAB_CANCEL_GRACE_S", "").strip()
    try:
        return max(0.1, float(value)) if value else 3.0
    except ValueError:
        return 3.0


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


# --------------------------------------------------------------------------------------------- file helpers
def _store() -> Store:
    return default_store()


def _jobs_root(store: Store) -> Path:
    p = store.root / "jobs"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _job_dir(store: Store, job_id: str) -> Path:
    Store._check_key(job_id)
    return _jobs_root(store) / job_id


@contextmanager
def _registry_lock(store: Store) -> Iterator[None]:
    with open(_jobs_root(store) / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(jd: Path) -> dict | None:
    try:
        return json.loads((jd / "status.json").read_text())
    except (OSError, ValueError):
        return None


def _write(jd: Path, rec: dict, fsync: bool = True) -> None:
    write_json_atomic(jd / "status.json", rec, fsync=fsync)


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/pid/stat): tells a reused pid from our worker."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _worker_alive(rec: dict) -> bool:
    pid = rec.get("pid")
    if not pid_alive(pid):
        return False
    expected = rec.get("pid_start")
    return expected is None or _proc_start_time(pid) in (None, expected)


def _reap() -> None:
    for child in list(_CHILDREN):
        if child.poll() is not None:
            _CHILDREN.remove(child)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _salvage(store: Store, jd: Path, rec: dict) -> bool:
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


def _finish_locked(store: Store, jd: Path, rec: dict, state: str, message: str = "") -> dict:
    rec = dict(rec)
    rec["state"] = state
    rec["message"] = message
    rec["finished"] = time.time()
    if state != "done":
        _salvage(store, jd, rec)
    rec["out_dir"] = None
    _write(jd, rec)
    return rec


# ------------------------------------------------------------------------------------------- scheduling
def _refresh_locked(store: Store, jd: Path, rec: dict) -> dict:
    """Turn a running record whose worker is gone (or stuck after cancel) into its true final state."""
    if rec.get("state") != "running":
        return rec
    cancel_file = jd / "cancel"
    alive = _worker_alive(rec)
    if alive and cancel_file.exists():
        try:
            asked = cancel_file.stat().st_mtime
        except OSError:
            asked = time.time()
        if time.time() - asked > cancel_grace_s() + HARD_KILL_EXTRA_S:
            _kill(rec.get("pid"))
            alive = _worker_alive(rec)
            if not alive:
                return _finish_locked(store, jd, rec, "cancelled", "cancelled (worker killed after not stopping)")
    if alive:
        return rec
    if store.has(rec["id"]):
        rec = dict(rec, fraction=1.0)
        return _finish_locked(store, jd, rec, "done", "")
    if cancel_file.exists():
        return _finish_locked(store, jd, rec, "cancelled", "cancelled")
    message = f"interrupted: worker process {rec.get('pid')} ended without finishing (killed?)"
    last = _last_log_line(jd, rec.get("log_offset") or 0)
    if last:
        message += f"; its last output: {last}"
    return _finish_locked(store, jd, rec, "failed", message)


def _last_log_line(jd: Path, offset: int) -> str:
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


def _kill(pid: int | None, wait_s: float = 3.0) -> None:
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
        _reap()
        if not pid_alive(pid):
            return
        time.sleep(0.02)


def _all_records(store: Store) -> list[tuple[Path, dict]]:
    out = []
    for jd in _jobs_root(store).iterdir():
        if jd.is_dir() and not jd.name.startswith("."):
            rec = _read(jd)
            if rec is not None:
                out.append((jd, rec))
    return out


def _schedule_locked(store: Store) -> None:
    """Start the oldest queued jobs while fewer than :func:`max_jobs` are running. Call with the lock held."""
    records = [(jd, _refresh_locked(store, jd, rec)) for jd, rec in _all_records(store)]
    running = sum(1 for _, rec in records if rec.get("state") == "running")
    queued = sorted((r for r in records if r[1].get("state") == "queued"), key=lambda r: r[1].get("created") or 0)
    for jd, rec in queued[: max(0, max_jobs() - running)]:
        _start_worker(store, jd, rec)


def _start_worker(store: Store, jd: Path, rec: dict) -> None:
    env = dict(os.environ)
    env["FRACTAL_LAB_CACHE"] = str(store.root)
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
    rec = dict(rec, state="running", pid=proc.pid, pid_start=_proc_start_time(proc.pid), started=time.time(),
               log_offset=log_offset)
    _write(jd, rec)


# ---------------------------------------------------------------------------------------------- public API
def submit(kind: str, spec: Any, extra: str = "", resume: bool = False) -> str:
    """Run ``spec`` as a ``kind`` job in the background; return its id (== the store key).

    Already in the store: nothing is run (the job reads as done). Already queued or running: the same id is
    returned and no second process starts. An unknown ``kind`` gives a job that shows ``failed`` with a message
    naming the known kinds. ``resume=True`` seeds the run's ``out_dir`` with this job's :func:`partial_dir`.
    """
    _reap()
    store = _store()
    key = store.key(kind, spec, extra)
    if store.has(key):
        return key
    jd = _job_dir(store, key)
    with _registry_lock(store):
        rec = _read(jd)
        if rec is not None:
            rec = _refresh_locked(store, jd, rec)
            if rec.get("state") in ACTIVE:
                return key
        if store.has(key):
            return key
        jd.mkdir(parents=True, exist_ok=True)
        for name in ("cancel", "events.jsonl", "traceback.txt"):
            (jd / name).unlink(missing_ok=True)
        task = TASKS.get(kind)
        now = time.time()
        new = {
            "id": key, "kind": kind, "spec": spec.to_dict(), "extra": extra, "spec_class": type(spec).__name__,
            "task": list(task) if task else None, "resume": bool(resume),
            "state": "queued", "fraction": 0.0, "message": "", "info": None,
            "created": now, "started": None, "finished": None, "pid": None, "pid_start": None, "out_dir": None,
        }
        if task is None:
            new.update(state="failed", finished=now,
                       message=f"unknown job kind {kind!r} (known: {', '.join(sorted(TASKS))})")
        _write(jd, new)
        if task is not None:
            _schedule_locked(store)
    return key


def status(job_id: str) -> JobStatus | None:
    """The job's current state (None when neither a job record nor a stored result has this id).

    Reading status is also what notices a dead worker (-> failed, "interrupted"), finishes a stuck cancel, and
    starts queued jobs when slots are free, so a page that polls keeps the queue moving.
    """
    _reap()
    store = _store()
    jd = _job_dir(store, job_id)
    rec = _read(jd)
    if rec is not None and rec.get("state") in ACTIVE:
        with _registry_lock(store):
            rec = _read(jd) or rec
            rec = _refresh_locked(store, jd, rec)
            if rec.get("state") == "queued":
                _schedule_locked(store)
                rec = _read(jd) or rec
    return _to_status(store, job_id, rec)


def _to_status(store: Store, job_id: str, rec: dict | None) -> JobStatus | None:
    stored = store.record(job_id)
    has_partial = (_job_dir(store, job_id) / "partial").is_dir()
    if rec is None and stored is None:
        return None
    now = time.time()
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
        last = _last_event(_job_dir(store, job_id) / "events.jsonl")
        if last is not None and float(last.get("fraction") or 0.0) >= fraction:
            fraction, info = float(last.get("fraction") or 0.0), last.get("info")
    started, finished = rec.get("started"), rec.get("finished")
    elapsed = None
    if started:
        elapsed = (finished or now) - started
    eta = None
    if state == "running" and elapsed is not None and fraction > 0:
        eta = max(0.0, elapsed * (1.0 - fraction) / fraction)
    if state == "running" and (_job_dir(store, job_id) / "cancel").exists():
        message = message or "cancelling…"
    return JobStatus(
        id=job_id, kind=rec.get("kind", ""), state=state, fraction=fraction, eta_s=eta, message=message,
        created=rec.get("created"), started=started, finished=finished, spec=rec.get("spec"),
        info=info, elapsed_s=elapsed, pid=rec.get("pid") if state == "running" else None,
        has_result=False, has_partial=has_partial, size=None,
    )


def _last_event(path: Path) -> dict | None:
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


def event_log(job_id: str, since: int = 0) -> list[dict]:
    """The job's event lines from index ``since``: ``{"t": time, "fraction": f, "info": {...}}``."""
    store = _store()
    path = _job_dir(store, job_id) / "events.jsonl"
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being appended right now
            break
    return out[since:]


def events(job_id: str, since: int = 0) -> list[dict]:
    """The info dicts the task passed to ``progress()``, in order, from index ``since`` (for live curves)."""
    return [e.get("info") for e in event_log(job_id, since)]


def cancel(job_id: str, wait: float = 0.0) -> JobStatus | None:
    """Ask a job to stop. A queued job is cancelled at once; a running one gets the cancel flag (and is
    ended if it does not stop within the grace period). ``wait`` > 0 blocks up to that many seconds for the
    job to reach a final state. Cancelling a finished job does nothing."""
    store = _store()
    jd = _job_dir(store, job_id)
    with _registry_lock(store):
        rec = _read(jd)
        if rec is None:
            return status(job_id)
        rec = _refresh_locked(store, jd, rec)
        if rec.get("state") == "queued":
            _finish_locked(store, jd, rec, "cancelled", "cancelled before it started")
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


def result_dir(job_id: str) -> Path | None:
    """The stored result folder of a finished job (None while it has none)."""
    store = _store()
    return store.path(job_id) if store.has(job_id) else None


def partial_dir(job_id: str) -> Path | None:
    """What a cancelled/failed/killed run left in its working folder (e.g. a checkpoint), or None."""
    p = _job_dir(_store(), job_id) / "partial"
    return p if p.is_dir() else None


def delete(job_id: str) -> bool:
    """Forget a job and its result: stop its worker (at once), remove the job record and the store entry."""
    store = _store()
    jd = _job_dir(store, job_id)
    found = False
    with _registry_lock(store):
        rec = _read(jd)
        if rec is not None:
            found = True
            if rec.get("state") == "running" and _worker_alive(rec):
                _kill(rec.get("pid"))
            if rec.get("out_dir"):
                shutil.rmtree(rec["out_dir"], ignore_errors=True)
        if jd.exists():
            found = True
            trash = store.new_temp_dir(f"trash-job-{job_id}")
            os.rename(jd, trash / "job")
            shutil.rmtree(trash, ignore_errors=True)
        found = store.delete(job_id) or found
        _schedule_locked(store)
    return found


def list_jobs() -> list[JobStatus]:
    """Every job with a record, newest first."""
    store = _store()
    out = [st for jd, _ in _all_records(store) if (st := status(jd.name)) is not None]
    out.sort(key=lambda s: s.created or 0, reverse=True)
    return out


def list_runs() -> list[JobStatus]:
    """Every job and every stored result (one row per id), newest first: what the Runs page shows."""
    store = _store()
    rows = {st.id: st for st in list_jobs()}
    for rec in store.entries():
        if rec["key"] not in rows:
            st = _to_status(store, rec["key"], None)
            if st is not None:
                rows[st.id] = st
    return sorted(rows.values(), key=lambda s: s.created or 0, reverse=True)


def clear_all() -> int:
    """Delete every job (stopping running ones) and every stored result; return how many ids were removed."""
    ids = {st.id for st in list_runs()}
    for job_id in ids:
        delete(job_id)
    _store().clear()
    return len(ids)


def spec_summary(spec: dict | None, max_items: int = 8, max_len: int = 160) -> str:
    """A one-line ``field=value`` digest of a spec dict (nested dicts flattened with dots) for tables."""
    if not spec:
        return ""
    items: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
            return
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, (list, tuple)):
            parts = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in value[:4]]
            text = "[" + ", ".join(parts) + (", …" if len(value) > 4 else "") + "]"
        else:
            text = str(value)
        items.append(f"{prefix[:-1] if prefix.endswith('.') else prefix}={text}")

    for k, v in spec.items():
        walk(f"{k}.", v)
    more = len(items) - max_items
    text = ", ".join(items[:max_items]) + (f", … (+{more})" if more > 0 else "")
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


# ------------------------------------------------------------------------------------------------- worker
class _CancelFlag:
    """The ``cancel`` object given to a task: ``is_set()`` is true once the job's cancel file exists."""

    def __init__(self, path: Path):
        self._path = path
        self._set = False

    def is_set(self) -> bool:
        if not self._set and self._path.exists():
            self._set = True
        return self._set


def _load_task(rec: dict):
    kind = rec.get("kind")
    task = rec.get("task") or TASKS.get(kind)
    if not task:
        raise LookupError(f"unknown job kind {kind!r} (known: {', '.join(sorted(TASKS))})")
    module_name, cls_name, fn_name = task
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise LookupError(
            f"job kind {kind!r}: its module {module_name!r} could not be imported "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    try:
        spec_cls = getattr(module, cls_name)
        fn = getattr(module, fn_name)
    except AttributeError as exc:
        raise LookupError(f"job kind {kind!r}: {module_name} has no {exc.name!r}") from exc
    try:
        spec = spec_cls.from_dict(rec.get("spec") or {})
    except Exception as exc:
        raise ValueError(
            f"job kind {kind!r}: the spec could not be rebuilt as {cls_name} ({type(exc).__name__}: {exc})"
        ) from exc
    return spec, fn


def run_worker(job_id: str) -> int:
    """The body of ``python -m runs run <id>``: run the task, commit its folder to the store, record the end."""
    store = _store()
    jd = _job_dir(store, job_id)
    me = os.getpid()
    with _registry_lock(store):
        rec = _read(jd)
        if rec is None:
            print(f"jobs: no job {job_id!r} under {store.root}", file=sys.stderr)
            return 2
        if rec.get("pid") != me:
            if rec.get("state") == "running" and _worker_alive(rec):
                print(f"jobs: {job_id} is already running in process {rec.get('pid')}", file=sys.stderr)
                return 1
            if store.has(job_id):
                print(f"jobs: {job_id} is already in the store", file=sys.stderr)
                return 0
            # Run by hand (``python -m runs run ID``) for a job that is not running: take it over.
            (jd / "cancel").unlink(missing_ok=True)
            rec.update(state="running", pid=me, pid_start=_proc_start_time(me), started=time.time(), finished=None)
        out = store.new_temp_dir(f"job-{job_id}")
        partial = jd / "partial"
        if rec.get("resume") and partial.is_dir():
            shutil.copytree(partial, out, dirs_exist_ok=True)
        rec.update(out_dir=str(out), fraction=0.0, message="", info=None)
        _write(jd, rec)

    cancel_flag = _CancelFlag(jd / "cancel")
    finished = threading.Event()
    state = {"rec": rec, "last_write": 0.0}

    def finish(new_state: str, message: str = "") -> bool:
        """Write the final state once (whichever of task thread and watchdog gets here first), then schedule."""
        with _registry_lock(store):
            cur = _read(jd) or state["rec"]
            if cur.get("state") != "running" or cur.get("pid") != me:
                return False
            cur.update(fraction=state["rec"].get("fraction", 0.0), info=state["rec"].get("info"))
            if new_state == "done":
                cur["fraction"] = 1.0
            _finish_locked(store, jd, cur, new_state, message)
            try:
                _schedule_locked(store)
            except Exception:  # never let scheduling others turn this job's end into a crash
                traceback.print_exc()
        return True

    def progress(fraction: float, info: dict | None = None) -> None:
        try:
            f = min(1.0, max(0.0, float(fraction)))
        except (TypeError, ValueError):
            f = 0.0
        now = time.time()
        rec_now = state["rec"]
        rec_now["fraction"] = f
        if info is not None:
            rec_now["info"] = info
            line = json.dumps({"t": now, "fraction": f, "info": info}, default=_jsonable)
            with open(jd / "events.jsonl", "a") as fh:
                fh.write(line + "\n")
        if now - state["last_write"] >= STATUS_WRITE_EVERY_S or f >= 1.0:
            state["last_write"] = now
            cur = _read(jd)
            if cur is not None and cur.get("state") == "running" and cur.get("pid") == me:
                cur.update(fraction=f, info=json.loads(json.dumps(rec_now.get("info"), default=_jsonable)))
                _write(jd, cur, fsync=False)

    def watchdog() -> None:
        asked = None
        while not finished.wait(0.1):
            if asked is None and cancel_flag.is_set():
                asked = time.time()
            if asked is not None and time.time() - asked > cancel_grace_s():
                if finish("cancelled", f"cancelled (stopped after {cancel_grace_s():.0f} s grace)"):
                    os._exit(3)
                return

    threading.Thread(target=watchdog, name="jobs-cancel-watchdog", daemon=True).start()
    t0 = time.time()
    loading = True
    try:
        from engine.errors import Cancelled

        spec, fn = _load_task(rec)
        loading = False
        fn(spec, out, progress, cancel_flag)
        if cancel_flag.is_set():
            raise Cancelled("cancelled")
        elapsed = time.time() - t0
        store.commit(job_id, out, {
            "kind": rec["kind"], "spec": rec.get("spec"), "extra": rec.get("extra", ""),
            "created": time.time(), "started": rec.get("started"), "finished": time.time(),
            "elapsed_s": elapsed, "status": "done", "job_id": job_id,
        })
        finished.set()
        finish("done")
        shutil.rmtree(jd / "partial", ignore_errors=True)
        return 0
    except BaseException as exc:  # noqa: BLE001 - every way out must leave a final state on disk
        finished.set()
        from engine.errors import Cancelled

        if not loading and (isinstance(exc, (Cancelled, KeyboardInterrupt)) or cancel_flag.is_set()):
            finish("cancelled", "cancelled")
            return 0
        tb = traceback.format_exc()
        (jd / "traceback.txt").write_text(tb)
        # The message is the traceback's last line ("ValueError: lr: must be > 0 ..."); for a task that could not
        # even be loaded, our own sentence already says what is wrong.
        last = str(exc) if loading else (tb.strip().splitlines()[-1] if tb.strip() else repr(exc))
        finish("failed", last)
        return 1


# ---------------------------------------------------------------------------------------------------- CLI
def _fmt_row(st: JobStatus) -> str:
    eta = f"eta {st.eta_s:.0f}s" if st.eta_s else ""
    return f"{st.id:40s} {st.state:9s} {st.fraction * 100:5.1f}% {eta:10s} {st.message}"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m runs", description="Fractal Lab's background jobs.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="every job, newest first")
    for name, text in (("status", "one job's status as JSON"), ("cancel", "ask a job to stop"),
                       ("run", "run a job in this process (what the worker does)"),
                       ("delete", "forget a job and its stored result")):
        sub.add_parser(name, help=text).add_argument("id")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        for st in list_jobs():
            print(_fmt_row(st))
        return 0
    if args.cmd == "status":
        st = status(args.id)
        if st is None:
            print(f"no job {args.id!r}", file=sys.stderr)
            return 1
        print(json.dumps(st.to_dict(), indent=1, default=str))
        return 0
    if args.cmd == "cancel":
        st = cancel(args.id)
        print(_fmt_row(st) if st else f"no job {args.id!r}")
        return 0 if st else 1
    if args.cmd == "delete":
        return 0 if delete(args.id) else 1
    return run_worker(args.id)


if __name__ == "__main__":
    sys.exit(main())
