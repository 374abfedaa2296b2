"""Runs and artifacts: every job and every stored result, newest first — status, re-open, download, delete.

The page only reads: the rows come from ``runs.list_runs()`` (job records and store entries merged, newest
first) and each row's picture from ``Store.thumbnail``; the only actions are the job runner's own
(``runs.cancel``, ``runs.delete``, ``runs.clear_all``). A row whose job is still live redraws itself every
second in its own fragment, so the rest of the page stays still while a grid or a training run progresses.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Callable

import streamlit as st

import runs
import ui
from cache import default_store, human_size

st.set_page_config(page_title="Runs · Fractal Lab", page_icon="🗂️", layout="wide")

ROOT = Path(__file__).resolve().parent.parent
PAGE_SIZE = 25
KIND_LABELS = {
    "grid": "Trainability grid",
    "zoom_video": "Zoom video",
    "fractalnet_train": "FractalNet training",
    "kron_train": "Kronecker network training",
}


def _grid_query(run: runs.JobStatus) -> dict[str, str]:
    return ui.grid_view_query(run.spec or {})  # the explorer's own spelling of a view as a link


def _video_query(run: runs.JobStatus) -> dict[str, str]:
    return ui.grid_view_query((run.spec or {})["grid"])  # a zoom video reopens on its deepest view


# kind -> (page file, link label, the query parameters that reopen this run there)
REOPEN: dict[str, tuple[str, str, Callable[[runs.JobStatus], dict[str, str]]]] = {
    "grid": ("pages/1_Trainability_Explorer.py", "🌀 Open in the explorer", _grid_query),
    "zoom_video": ("pages/1_Trainability_Explorer.py", "🌀 Open its view in the explorer", _video_query),
    "fractalnet_train": ("pages/2_FractalNet_Lab.py", "Open in the FractalNet lab", lambda run: {"run": run.id}),
}


def _when(ts: float | None) -> str:
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "—"


def _reopen_link(run: runs.JobStatus) -> None:
    target = REOPEN.get(run.kind)
    if target is None or run.state != "done":
        return
    page, label, query_of = target
    if not (ROOT / page).is_file():
        st.caption(f"{label.split(' ', 1)[1]}: page not available")
        return
    try:
        query = query_of(run)
    except Exception as exc:  # an old spec the page no longer understands: say so, keep the row usable
        st.caption(f"Cannot reopen this run: {exc}")
        return
    try:
        st.page_link(page, label=label, query_params=query)
    except Exception:  # e.g. a test harness that does not know the other pages
        st.caption(f"{label} — `{page}?{'&'.join(f'{k}={v}' for k, v in query.items())}`")


def _draw_row(run: runs.JobStatus) -> None:
    store = default_store()
    thumb_col, info_col, action_col = st.columns([1, 4, 1.6])
    with thumb_col:
        thumb = store.thumbnail(run.id) if run.has_result else None
        if thumb is not None:
            st.image(str(thumb), width="stretch")
        else:
            st.caption("no picture")
    with info_col:
        label = KIND_LABELS.get(run.kind, run.kind)
        st.markdown(f"**{label}** · {ui.STATE_ICONS.get(run.state, '')} {run.state} · `{run.id}`")
        took = ui.format_duration(run.elapsed_s)
        timing = {"queued": "waiting for a free slot", "running": f"running for {took}"}.get(
            run.state, f"took {took}")
        size = f" · {human_size(run.size)}" if run.size else ""
        st.caption(f"submitted {_when(run.created)} · {timing}{size}")
        summary = runs.spec_summary(run.spec)
        if summary:
            st.caption(summary)
        if run.state in ui.LIVE_STATES:
            st.progress(min(max(run.fraction, 0.0), 1.0), text=ui.job_progress_text(run))
        elif run.state == "failed":
            st.error(run.message or "failed (no message)")
        elif run.state == "cancelled":
            st.caption("⏹️ cancelled" + (" — its partial files are kept for a resume" if run.has_partial else ""))
        with st.expander("Details"):
            st.json(run.spec or {}, expanded=False)
            if run.has_result:
                st.caption("Files: " + ", ".join(store.files(run.id)))
    with action_col:
        _reopen_link(run)
        if run.has_result:
            st.download_button(
                "⬇ Download (.zip)", data=lambda key=run.id: default_store().zip_bytes(key),
                file_name=f"{run.id}.zip", mime="application/zip", key=f"runs-dl-{run.id}",
                on_click="ignore", width="stretch",
            )
        if run.state in ui.LIVE_STATES:
            if st.button("⏹ Cancel", key=f"runs-cancel-{run.id}", width="stretch"):
                runs.cancel(run.id)
                st.rerun(scope="app")
        if st.button("🗑 Delete", key=f"runs-del-{run.id}", width="stretch",
                     help="Stop the job if it runs, and remove its record and stored files"):
            runs.delete(run.id)
            st.toast(f"Deleted {run.id}")
            st.rerun(scope="app")


def _live_row(run_id: str) -> None:
    """A live job's row, redrawn every second; once the job ends the whole page reruns to show its result."""
    run = runs.status(run_id)
    if run is None:
        st.rerun(scope="app")
        return
    _draw_row(run)
    if not run.active:
        st.rerun(scope="app")


def _filters(rows: list[runs.JobStatus]) -> tuple[list[str], list[str]]:
    known_kinds = sorted(set(runs.TASKS) | {r.kind for r in rows})
    errors: list[str] = []
    q = ui.read_query_params({"kind": [], "state": []}, errors=errors)
    kinds_q = [k for k in q["kind"] if k in known_kinds]
    states_q = [s for s in q["state"] if s in runs.STATES]
    c1, c2 = st.columns(2)
    kinds = c1.multiselect("Kind", known_kinds, default=kinds_q, key="runs-kind",
                           format_func=lambda k: KIND_LABELS.get(k, k), placeholder="all kinds")
    states = c2.multiselect("State", list(runs.STATES), default=states_q, key="runs-state",
                            placeholder="all states")
    ui.write_query_params({"kind": kinds, "state": states}, defaults={"kind": [], "state": []})
    return kinds, states


def _clear_all_button(n_runs: int) -> None:
    if st.button("🧹 Clear all…", key="runs-clear", disabled=n_runs == 0,
                 help="Delete every job and every stored result (asks first)"):
        st.session_state["runs-confirm-clear"] = True


def _clear_all_confirmation(n_runs: int, size: int) -> None:
    if not st.session_state.get("runs-confirm-clear"):
        return
    with st.container(border=True):
        st.warning(f"Delete all {n_runs} runs and {human_size(size)} of stored results? Running jobs are "
                   "stopped. This cannot be undone.")
        yes, no, _ = st.columns([1, 1, 3])
        if yes.button("Yes, delete everything", key="runs-clear-yes", type="primary", width="stretch"):
            removed = runs.clear_all()
            st.session_state["runs-confirm-clear"] = False
            st.toast(f"Removed {removed} runs")
            st.rerun()
        if no.button("Keep them", key="runs-clear-no", width="stretch"):
            st.session_state["runs-confirm-clear"] = False
            st.rerun()


st.title("🗂️ Runs and artifacts")
st.caption("Every background job and every cached result, newest first. Results are keyed by their spec, so "
           "asking again for the same computation reopens it instead of recomputing.")

store = default_store()
all_runs = runs.list_runs()
size = store.size_bytes()
m1, m2, m3, m4 = st.columns(4)
m1.metric("Runs", len(all_runs))
m2.metric("Live jobs", sum(r.active for r in all_runs))
m3.metric("Store size", human_size(size), help=f"limit {human_size(store.limit_bytes)}; least recently used "
          "results are evicted beyond it")
with m4:
    _clear_all_button(len(all_runs))
_clear_all_confirmation(len(all_runs), size)
st.caption(f"Store: `{store.root}`")

kinds, states = _filters(all_runs)
shown = [r for r in all_runs if (not kinds or r.kind in kinds) and (not states or r.state in states)]
limit = st.session_state.get("runs-limit", PAGE_SIZE)

if not all_runs:
    st.info("No runs yet. Start one from the explorers in the sidebar; it will be listed here.")
elif not shown:
    st.info("No run matches these filters.")

for run in shown[:limit]:
    with st.container(border=True, key=f"run-{run.id}"):
        if run.active:
            st.fragment(_live_row, run_every=1.0)(run.id)
        else:
            _draw_row(run)

if len(shown) > limit:
    if st.button(f"Show more ({len(shown) - limit} not shown)", key="runs-more"):
        st.session_state["runs-limit"] = limit + PAGE_SIZE
        st.rerun()
