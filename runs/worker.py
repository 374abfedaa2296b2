"""The body of ``python -m runs run <id>``: run one job's task in this process and record how it ended.

Results enter the store only through :meth:`cache.Store.commit` (one atomic rename), so a worker killed at any
moment leaves nothing partial in the store. A cancel request is a file; a task that ignores it is ended by a
watchdog thread after the grace period.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from engine.errors import Cancelled
from engine.io import jsonable
from runs import kinds, rates, records, schedule
from runs.lifecycle import RESERVED_OPTIONS

STATUS_WRITE_EVERY_S = 0.25  # progress() rewrites status.json at most this often (events are appended each call)


class CancelFlag:
    """The ``cancel`` object given to a task: ``is_set()`` is true once the job's cancel file exists."""

    def __init__(self, path: Path):
        self._path = path
        self._set = False

    def is_set(self) -> bool:
        if not self._set and self._path.exists():
            self._set = True
        return self._set


def _kind_of(rec: dict) -> kinds.Kind | None:
    """The registry's kind first (a record written before a module moved still runs), else the references
    the record carries (a kind registered only in the submitting process)."""
    name = rec.get("kind") or ""
    known = kinds.get(name)
    if known is not None:
        return known
    task = rec.get("task")
    if isinstance(task, dict) and task.get("spec") and task.get("task"):
        return kinds.Kind(name, name, spec=task["spec"], task=task["task"])
    if isinstance(task, (list, tuple)) and len(task) == 3:  # (module, spec class, function): older records
        module, cls_name, fn_name = task
        return kinds.Kind(name, name, spec=f"{module}:{cls_name}", task=f"{module}:{fn_name}")
    return None


def _resolve(kind: kinds.Kind, ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    try:
        return kinds.resolve(ref)
    except ImportError as exc:
        raise LookupError(
            f"job kind {kind.name!r}: its module {module_name!r} could not be imported ({type(exc).__name__}: {exc})"
        ) from exc
    except AttributeError as exc:
        raise LookupError(f"job kind {kind.name!r}: {module_name} has no {attr!r}") from exc


def load_task(rec: dict) -> tuple[Any, Callable[..., None]]:
    """The job's spec object and task function, or an error whose message says what is missing."""
    kind = _kind_of(rec)
    if kind is None:
        raise LookupError(f"unknown job kind {rec.get('kind')!r} (known: {', '.join(sorted(kinds.KINDS))})")
    spec_cls = _resolve(kind, kind.spec)
    fn = _resolve(kind, kind.task)
    try:
        spec = spec_cls.from_dict(rec.get("spec") or {})
    except Exception as exc:
        raise ValueError(f"job kind {kind.name!r}: the spec could not be rebuilt as {spec_cls.__name__} "
                         f"({type(exc).__name__}: {exc})") from exc
    return spec, fn


def task_kwargs(fn: Callable[..., None], options: dict | None) -> dict:
    """The keyword arguments the task gets beyond ``(spec, out_dir, progress, cancel)``: each job option whose
    name the task declares, and ``sources`` (the store's stored grids) when it declares that. A task without
    such parameters is called as before; an option it does not declare is reported in worker.log, not passed."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or C function without a signature: only the four arguments
        params = {}
    named = {n for n, p in params.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    taken = set(list(params)[:4]) | {"sources"}  # the four the worker passes itself, whatever their names
    kwargs = {}
    for name, value in (options or {}).items():
        if name in named and name not in taken and name not in RESERVED_OPTIONS:
            kwargs[name] = value
        else:
            print(f"runs: option {name!r} ignored: {getattr(fn, '__qualname__', fn)} takes no such parameter",
                  file=sys.stderr, flush=True)
    if "sources" in named:
        from runs.stored import StoredGrids

        kwargs["sources"] = StoredGrids()
    return kwargs


def run_worker(job_id: str) -> int:
    """Run the task, commit its folder to the store, record the end; the process's exit code."""
    store = records.store()
    jd = records.job_dir(store, job_id)
    me = os.getpid()
    with records.registry_lock(store):
        rec = records.read(jd)
        if rec is None:
            print(f"runs: no job {job_id!r} under {store.root}", file=sys.stderr)
            return 2
        if rec.get("pid") != me:
            if rec.get("state") == "running" and records.worker_alive(rec):
                print(f"runs: {job_id} is already running in process {rec.get('pid')}", file=sys.stderr)
                return 1
            if store.has(job_id):
                print(f"runs: {job_id} is already in the store", file=sys.stderr)
                return 0
            # Run by hand (``python -m runs run ID``) for a job that is not running: take it over.
            (jd / "cancel").unlink(missing_ok=True)
            rec.update(state="running", pid=me, pid_start=records.proc_start_time(me), started=time.time(),
                       finished=None)
        # The working folder lives in the job's folder, where no other job's commit cleans up: a worker killed
        # mid-run leaves its checkpoint there, kept as partial/ by whoever notices the death. A folder left by
        # an earlier run that died before recording it is kept the same way first.
        records.salvage(jd, rec)
        out = records.work_dir(jd)
        out.mkdir()
        partial = jd / "partial"
        if rec.get("resume") and partial.is_dir():
            shutil.copytree(partial, out, dirs_exist_ok=True)
        rec.update(out_dir=str(out), fraction=0.0, message="", info=None)
        records.write(jd, rec)

    cancel_flag = CancelFlag(jd / "cancel")
    finished = threading.Event()
    state = {"rec": rec, "last_write": 0.0}

    def finish(new_state: str, message: str = "") -> bool:
        """Write the final state once (whichever of task thread and watchdog gets here first), then schedule."""
        with records.registry_lock(store):
            cur = records.read(jd) or state["rec"]
            if cur.get("state") != "running" or cur.get("pid") != me:
                return False
            cur.update(fraction=state["rec"].get("fraction", 0.0), info=state["rec"].get("info"))
            if new_state == "done":
                cur["fraction"] = 1.0
            records.finish_locked(jd, cur, new_state, message)
            try:
                schedule.schedule_locked(store)
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
            line = json.dumps({"t": now, "fraction": f, "info": info}, default=jsonable)
            with open(jd / "events.jsonl", "a") as fh:
                fh.write(line + "\n")
        if now - state["last_write"] >= STATUS_WRITE_EVERY_S or f >= 1.0:
            state["last_write"] = now
            cur = records.read(jd)
            if cur is not None and cur.get("state") == "running" and cur.get("pid") == me:
                cur.update(fraction=f, info=json.loads(json.dumps(rec_now.get("info"), default=jsonable)))
                records.write(jd, cur, fsync=False)

    def watchdog() -> None:
        asked = None
        while not finished.wait(0.1):
            if asked is None and cancel_flag.is_set():
                asked = time.time()
            if asked is not None and time.time() - asked > schedule.cancel_grace_s():
                if finish("cancelled", f"cancelled (stopped after {schedule.cancel_grace_s():.0f} s grace)"):
                    os._exit(3)
                return

    threading.Thread(target=watchdog, name="runs-cancel-watchdog", daemon=True).start()
    t0 = time.time()
    loading = True
    try:
        spec, fn = load_task(rec)
        options = rec.get("options") if isinstance(rec.get("options"), dict) else {}
        kwargs = task_kwargs(fn, options)
        loading = False
        fn(spec, out, progress, cancel_flag, **kwargs)
        if cancel_flag.is_set():
            raise Cancelled("cancelled")
        elapsed = time.time() - t0
        store.commit(job_id, out, {
            "kind": rec["kind"], "spec": rec.get("spec"), "extra": rec.get("extra", ""),
            "created": time.time(), "started": rec.get("started"), "finished": time.time(),
            "elapsed_s": elapsed, "status": "done", "job_id": job_id, "options": options,
        }, move=True)
        shutil.rmtree(jd / "partial", ignore_errors=True)  # before "done" shows: a reader never sees both
        rates.after_commit(rec["kind"], job_id, spec)  # before "done" shows: a done grid has calibrated
        finished.set()
        finish("done")
        return 0
    except BaseException as exc:  # noqa: BLE001 - every way out must leave a final state on disk
        finished.set()
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
