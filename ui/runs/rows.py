"""One bordered row per run: its picture, what it is and how it went, and what can be done with it.

A live job's row sits in its own fragment that redraws every second, so the rest of the page stays still while
a grid or a training run progresses; when the job ends the whole page reruns to show its result.
"""

from __future__ import annotations

import datetime as _dt
import io

import streamlit as st
from PIL import Image

import runs
from cache import default_store, human_size
from engine.errors import DamagedResult
from runs import kinds
from ui import nav
from ui.damaged import READ_ERRORS, damaged_notice
from ui.format import LIVE_STATES, STATE_ICONS, format_duration
from ui.jobs import job_progress_text, live_job_fragment

PAGE_SIZE = 25


def run_list(shown: list[runs.JobStatus], total: int) -> None:
    """The rows, newest first, ``PAGE_SIZE`` at a time ("Show more" adds the next ones)."""
    if not total:
        st.info("No runs yet. Start one from the explorers in the sidebar; it will be listed here.")
    elif not shown:
        st.info("No run matches these filters.")
    limit = st.session_state.get("runs-limit", PAGE_SIZE)
    for run in shown[:limit]:
        with st.container(border=True, key=f"run-{run.id}"):
            if run.active:
                live_job_fragment(run.id, key=f"run-{run.id}", interval=1.0, draw=run_row)
            else:
                run_row(run)
    if len(shown) > limit:
        if st.button(f"Show more ({len(shown) - limit} not shown)", key="runs-more"):
            st.session_state["runs-limit"] = limit + PAGE_SIZE
            st.rerun()


def run_row(run: runs.JobStatus) -> None:
    thumb_col, info_col, action_col = st.columns([1, 4, 1.6])
    picture = damage = None
    if run.has_result:
        try:
            picture = _thumbnail(str(default_store().root), run.id, run.created)
        except READ_ERRORS as exc:  # this row says so and offers a recompute; every other row is drawn as ever
            damage = exc
    with thumb_col:
        if picture is not None:
            st.image(picture, width="stretch")
        else:
            st.caption("damaged" if damage is not None else "no picture")
    with info_col:
        _description(run)
        if damage is not None:
            damaged_notice(damage, key=f"runs-recompute-{run.id}", job_id=run.id)
    with action_col:
        _actions(run)


@st.cache_data(max_entries=256, show_spinner=False)
def _thumbnail(store_root: str, run_id: str, created: float | None) -> bytes | None:
    """``runs.thumbnail`` of a stored result whose files pass their checksums, as a picture that decodes (so a
    truncated one is reported, not handed to ``st.image``); kept per stored result (a key names one content)."""
    default_store().verify(run_id)
    data = runs.thumbnail(run_id)
    if data is not None:
        try:
            Image.open(io.BytesIO(data)).load()
        except Exception as exc:  # noqa: BLE001 - Pillow reports a broken file in many types (OSError, SyntaxError…)
            raise DamagedResult(f"its picture cannot be decoded: {exc}") from None
    return data


def _when(ts: float | None) -> str:
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "—"


def _description(run: runs.JobStatus) -> None:
    st.markdown(f"**{kinds.title(run.kind)}** · {STATE_ICONS.get(run.state, '')} {run.state} · `{run.id}`")
    took = format_duration(run.elapsed_s)
    timing = {"queued": "waiting for a free slot", "running": f"running for {took}"}.get(run.state, f"took {took}")
    size = f" · {human_size(run.size)}" if run.size else ""
    st.caption(f"submitted {_when(run.created)} · {timing}{size}")
    summary = runs.spec_summary(run.spec)
    if summary:
        st.caption(summary)
    if run.state in LIVE_STATES:
        st.progress(min(max(run.fraction, 0.0), 1.0), text=job_progress_text(run))
    elif run.state == "failed":
        st.error(run.message or "failed (no message)")
    elif run.state == "cancelled":
        st.caption(":material/cancel: cancelled" + (" — its partial files are kept for a resume"
                                                   if run.has_partial else ""))
    with st.expander("Details"):
        st.json(run.spec or {}, expanded=False)
        if run.has_result:
            st.caption("Files: " + ", ".join(default_store().files(run.id)))


def _actions(run: runs.JobStatus) -> None:
    if run.state == "done":
        _reopen_link(run)
    if run.has_result:
        st.download_button(
            "Download (.zip)", data=lambda key=run.id: default_store().zip_bytes(key), icon=":material/download:",
            file_name=f"{run.id}.zip", mime="application/zip", key=f"runs-dl-{run.id}",
            on_click="ignore", width="stretch",
        )
    if run.state in LIVE_STATES:
        if st.button("Cancel", key=f"runs-cancel-{run.id}", icon=":material/stop_circle:", width="stretch"):
            runs.cancel(run.id)
            st.rerun(scope="app")
    if st.button("Delete", key=f"runs-del-{run.id}", icon=":material/delete:", width="stretch",
                 help="Stop the job if it runs, and remove its record and stored files"):
        runs.delete(run.id)
        st.toast(f"Deleted {run.id}")
        st.rerun(scope="app")


def _reopen_link(run: runs.JobStatus) -> None:
    """"Open in …": the page that shows this kind of run, opened on this run (see ``ui.nav.REOPEN``)."""
    try:
        link = nav.reopen_link(run.kind, run.id, run.spec)
    except Exception as exc:  # an old spec the page no longer understands: say so, keep the row usable
        st.caption(f"Cannot reopen this run: {type(exc).__name__}: {exc}")
        return
    if link is None:
        return
    try:
        st.page_link(link.page.file, label=link.label, icon=link.page.icon, query_params=link.query)
    except Exception:  # e.g. a test harness that does not know the other pages
        query = "&".join(f"{k}={v}" for k, v in link.query.items())
        st.caption(f"{link.label} — `{link.page.file}?{query}`")
