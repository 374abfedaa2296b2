"""The job behind the map: ONE grid job per view, found again by its spec (job id = store key), so a reload or a
second tab picks up the same work; while it runs the map draws its live snapshot (coarse first, sharper after
every refinement pass, see ``ui/trainability/progressive.py``), and when it is done its stored result.

A view starts on its own (opened from a link, a preset or a zoom) only when it costs less than the engine's
``AUTO_COMPUTE_LIMIT_S``; a costlier one waits for "Compute", so a URL cannot occupy the server for years. A stored
result that cannot be read is kept aside as ``damaged`` for the map to offer a recompute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

import runs
from cache import default_store
from engine.trainability import GridSpec, results
from engine.trainability.cost import auto_compute_ok
from ui.damaged import READ_ERRORS
from ui.format import LIVE_STATES
from ui.trainability import session

@dataclass
class ViewJobs:
    """The current view's job and what the map shows: the stored result once the job is done."""

    spec: GridSpec  # the view's spec, float64 where float32 cannot resolve it
    raised: bool  # float32 was raised to float64
    job_id: str
    job: Any  # runs.JobStatus | None
    shown: results.GridFiles | None = None
    shown_dir: str | None = None  # the shown result's folder: the key of caches of what is drawn from it
    cost_s: float = 0.0  # estimated seconds of the view's job
    held: bool = False  # the view would start on its own but costs too much: it waits for "Compute"
    damaged: tuple | None = None  # (job id, spec, error) of a stored result that cannot be read
    options: dict | None = None  # where the job computes (e.g. {"scheduler": address}); not part of its key

    @property
    def shown_id(self) -> str | None:
        """The store key of the shown result (the view's own job: there is no other)."""
        return self.job_id if self.shown is not None else None

    @property
    def running(self) -> bool:
        """The job is queued or running: the map shows its live snapshot."""
        return self.job is not None and self.job.state in LIVE_STATES


def grid_id(spec: GridSpec) -> str:
    """The job id (= store key) of the grid job for ``spec``."""
    return default_store().key("grid", spec)


def estimate(spec: GridSpec) -> float:
    """Seconds ``spec`` takes here: at this machine's measured speed for its experiment (or its dtype) when such a
    grid was timed, else at the cost model's reference speed."""
    return runs.rates.calibrated_seconds(spec)


def submit(kind: str, spec, options: dict | None = None) -> str:
    """``runs.submit`` with the compute options (where to run), which never change the job's key."""
    return runs.submit(kind, spec, options=options or None)


@st.cache_data(max_entries=64, show_spinner=False)
def load_result(result_dir: str) -> results.GridFiles:
    """A finished grid's arrays and files (result folders never change once written)."""
    return results.load(result_dir)


def result_of(spec: GridSpec) -> results.GridFiles | None:
    """The stored result of ``spec``'s grid, if it was computed."""
    rd = runs.result_dir(grid_id(spec))
    return load_result(str(rd)) if rd is not None else None


def request_compute() -> None:
    """on_click of every "Compute this view" button: compute the current view whatever it costs."""
    session.get()["autorun"] = True
    st.session_state["tx_force"] = True


def view_job_ids(state: dict) -> set[str]:
    """The id of the current view's job, whether started or not (a set, for :func:`cancel_replaced`)."""
    return {grid_id(session.view_spec(state)[0])}


def cancel_replaced(old_ids: set[str], state: dict) -> None:
    """Cancel the jobs of a view the user replaced (e.g. by another resolution) that are still queued or running,
    unless the new view uses them too."""
    for job_id in old_ids - view_job_ids(state):
        status = runs.status(job_id)
        if status is not None and status.active:
            runs.cancel(job_id)


def view_jobs(state: dict, options: dict | str | None = None) -> ViewJobs:
    """Find (and, when the view should compute, start) the current view's one grid job; ``options`` say where
    it computes (the sidebar's "Compute on": a scheduler address, or the options themselves; None = here)."""
    if isinstance(options, str):
        options = {"scheduler": options}
    options = options or None
    spec, raised = session.view_spec(state)
    job_id = grid_id(spec)
    job = runs.status(job_id)
    force = st.session_state.pop("tx_force", False)
    if force:  # the user asked for this view: it computes whatever it costs
        state["confirmed"] = job_id
    allowed = state.get("confirmed") == job_id or auto_compute_ok(spec)
    held = state["autorun"] and not allowed and job is None
    again = force and job is not None and job.state in ("failed", "cancelled")
    if state["autorun"] and allowed and (job is None or again):
        job_id = submit("grid", spec, options)
        job = runs.status(job_id)
    jobs = ViewJobs(spec, raised, job_id, job, cost_s=estimate(spec), held=held, options=options)
    if job is not None and job.state == "done":
        try:
            rd = runs.result_dir(job_id)
            if rd is not None:
                jobs.shown, jobs.shown_dir = load_result(str(rd)), str(rd)
        except READ_ERRORS as exc:
            jobs.damaged = (job_id, spec, exc)
    return jobs
