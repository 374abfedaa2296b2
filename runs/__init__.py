"""Background jobs over the result store: each job is its own OS process with progress, cancel and status on
disk, so it outlives a Streamlit script run, a browser reload and a second tab.

    import runs
    job_id = runs.submit("grid", spec)     # id == store key; already stored -> done at once, no work
    runs.submit("grid", spec, options={"scheduler": "tcp://host:8786"})   # how to run: not part of the id
    runs.status(job_id); runs.events(job_id); runs.cancel(job_id); runs.wait(job_id, 60); runs.result_dir(job_id)
    runs.live_dir(job_id)                  # a running job's working folder (live snapshots), else None
    runs.rates.measured("float64")         # this machine's measured grid speed (runs/rates.py)

Job kinds live in :mod:`runs.kinds`; the shell side is ``python -m runs list|status|cancel|run|delete``.
"""

from runs.kinds import KINDS, Kind, register_task
from runs import rates
from runs.lifecycle import cancel, check_options, delete, status, submit, wait, wait_for
from runs.listing import clear_all, list_jobs, list_runs, spec_summary
from runs.records import ACTIVE, STATES, TERMINAL, JobStatus
from runs.results import event_log, events, live_dir, partial_dir, reading, result_dir, thumbnail
from runs.stored import StoredGrids
from runs.schedule import cancel_grace_s, max_jobs
from runs.worker import run_worker

TASKS = KINDS  # the older name of the registry of kinds

__all__ = [
    "ACTIVE", "KINDS", "STATES", "TASKS", "TERMINAL", "JobStatus", "Kind", "StoredGrids", "cancel", "cancel_grace_s",
    "check_options", "clear_all", "delete", "event_log", "events", "list_jobs", "list_runs", "live_dir", "max_jobs",
    "partial_dir", "rates", "reading", "register_task", "result_dir", "run_worker", "spec_summary", "status",
    "submit", "thumbnail", "wait", "wait_for",
]
