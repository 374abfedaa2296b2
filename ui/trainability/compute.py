"""The jobs behind the map: a quick preview, then the full resolution, each a background job found again by its
spec (job id = store key), so a reload or a second tab picks up the same work; and their results, read once.

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
from engine.trainability.cost import auto_compute_ok, estimate_seconds
from engine.trainability.views import preview_spec
from ui.damaged import READ_ERRORS
from ui.trainability import session


@dataclass
class ViewJobs:
    """The current view's jobs and what the map shows: the full resolution when done, else the preview."""

    spec: GridSpec  # the view's spec, float64 where float32 cannot resolve it
    raised: bool  # float32 was raised to float64
    fine_id: str
    fine: Any  # runs.JobStatus | None
    coarse_id: str | None
    coarse: Any
    shown_id: str | None = None
    shown: results.GridFiles | None = None
    shown_dir: str | None = None  # the shown result's folder: the key of caches of what is drawn from it
    cost_s: float = 0.0  # estimated seconds of the preview and the full view together
    held: bool = False  # the view would start on its own but costs too much: it waits for "Compute"
    damaged: tuple | None = None  # (job id, spec, error) of a stored result that cannot be read

    @property
    def showing_preview(self) -> bool:
        return self.shown is not None and self.shown_id != self.fine_id

    def live(self) -> list[tuple[Any, str]]:
        """(status, title) of the jobs worth a progress panel (the preview only until the full view is done)."""
        fine_done = self.fine is not None and self.fine.state == "done"
        return [(s, t) for s, t in ((None if fine_done else self.coarse, "Preview"), (self.fine, "Full resolution"))
                if s is not None]


def grid_id(spec: GridSpec) -> str:
    """The job id (= store key) of the grid job for ``spec``."""
    return default_store().key("grid", spec)


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
    """The ids of the current view's jobs (full resolution and preview), whether started or not."""
    spec, _ = session.view_spec(state)
    coarse_spec = preview_spec(spec)
    return {grid_id(spec)} | ({grid_id(coarse_spec)} if coarse_spec is not None else set())


def cancel_replaced(old_ids: set[str], state: dict) -> None:
    """Cancel the jobs of a view the user replaced (e.g. by another resolution) that are still queued or running,
    unless the new view uses them too (a 32 x 32 preview is the same job at every resolution above it)."""
    for job_id in old_ids - view_job_ids(state):
        status = runs.status(job_id)
        if status is not None and status.active:
            runs.cancel(job_id)


def view_jobs(state: dict) -> ViewJobs:
    """Find (and, when the view should compute, start) the current view's preview and full-resolution jobs."""
    spec, raised = session.view_spec(state)
    coarse_spec = preview_spec(spec)
    fine_id = grid_id(spec)
    coarse_id = grid_id(coarse_spec) if coarse_spec else None
    fine, coarse = runs.status(fine_id), runs.status(coarse_id) if coarse_id else None
    force = st.session_state.pop("tx_force", False)
    if force:  # the user asked for this view: its full resolution follows the preview whatever it costs
        state["confirmed"] = fine_id
        if fine is not None and fine.state in ("failed", "cancelled"):
            state["retry"] = fine_id  # computed again, once the preview is done
    allowed = state.get("confirmed") == fine_id or auto_compute_ok(spec)
    cost_s = estimate_seconds(spec) + (estimate_seconds(coarse_spec) if coarse_spec else 0.0)
    held = state["autorun"] and not allowed and fine is None and coarse is None
    if state["autorun"] and allowed:
        fine_done = fine is not None and fine.state == "done"
        if coarse_spec is not None and not fine_done and (coarse is None or force and coarse.terminal
                                                          and coarse.state != "done"):
            coarse_id = runs.submit("grid", coarse_spec)
            coarse = runs.status(coarse_id)
        # The full resolution waits for the preview, on every path ("Compute" too): on 2 cores the two would
        # otherwise compete and the preview (the first picture within seconds) would arrive late. The progress
        # fragment reruns the page when the preview finishes, which submits the full view. A cancelled preview
        # starts nothing until Compute.
        preview_pending = coarse is not None and coarse.state != "done"
        retry = state.get("retry") == fine_id and fine is not None and fine.state in ("failed", "cancelled")
        if not preview_pending and (fine is None or retry):
            fine_id = runs.submit("grid", spec)
            fine = runs.status(fine_id)
            state.pop("retry", None)
    jobs = ViewJobs(spec, raised, fine_id, fine, coarse_id, coarse, cost_s=cost_s, held=held)
    for job_id, status, job_spec in ((fine_id, fine, spec), (coarse_id, coarse, coarse_spec)):
        if status is not None and status.state == "done":
            try:
                rd = runs.result_dir(job_id)
                if rd is not None:
                    jobs.shown_id, jobs.shown, jobs.shown_dir = job_id, load_result(str(rd)), str(rd)
                    break
            except READ_ERRORS as exc:  # never fall back to the preview of a damaged full view
                jobs.damaged = (job_id, job_spec, exc)
                break
    return jobs
