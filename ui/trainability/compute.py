"""The jobs behind the map: a quick preview, then the full resolution, each a background job found again by its
spec (job id = store key), so a reload or a second tab picks up the same work; and their results, read once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

import runs
from cache import default_store
from engine.trainability import GridSpec, results
from engine.trainability.views import preview_spec
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


def view_jobs(state: dict) -> ViewJobs:
    """Find (and, when the view should compute, start) the current view's preview and full-resolution jobs."""
    spec, raised = session.view_spec(state)
    coarse_spec = preview_spec(spec)
    fine_id = grid_id(spec)
    coarse_id = grid_id(coarse_spec) if coarse_spec else None
    fine, coarse = runs.status(fine_id), runs.status(coarse_id) if coarse_id else None
    force = st.session_state.pop("tx_force", False)
    if state["autorun"]:
        fine_done = fine is not None and fine.state == "done"
        if coarse_spec is not None and not fine_done and (coarse is None or force and coarse.terminal
                                                          and coarse.state != "done"):
            coarse_id = runs.submit("grid", coarse_spec)
            coarse = runs.status(coarse_id)
        # The full resolution waits for the preview: on 2 cores the two would otherwise compete and the preview
        # (the first picture within seconds) would arrive late. The progress fragment reruns the page when the
        # preview finishes, which submits the full view. A cancelled preview starts nothing until Compute.
        preview_pending = coarse is not None and coarse.state != "done"
        if (fine is None and (force or not preview_pending)) or (
                force and fine is not None and fine.state in ("failed", "cancelled")):
            fine_id = runs.submit("grid", spec)
            fine = runs.status(fine_id)
    jobs = ViewJobs(spec, raised, fine_id, fine, coarse_id, coarse)
    for job_id, status in ((fine_id, fine), (coarse_id, coarse)):
        if status is not None and status.state == "done":
            rd = runs.result_dir(job_id)
            if rd is not None:
                jobs.shown_id, jobs.shown, jobs.shown_dir = job_id, load_result(str(rd)), str(rd)
                break
    return jobs
