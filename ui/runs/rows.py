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
from runs import describe, kinds, notes
from ui.damaged import READ_ERRORS, damaged_notice
from ui.format import LIVE_STATES, STATE_ICONS, format_duration
from ui.jobs import job_progress_text, live_job_fragment
from ui.runs import actions

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
        if st.button(f"Show more ({len(shown) - limit} not shown)", key="runs-more", icon=":material/expand_more:"):
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
        actions.delete_confirmation(run)
    with action_col:
        actions.actions(run)


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


def key_fields_text(run: runs.JobStatus) -> str:
    """The fields that tell this run from others of its kind: ``"variant micro · dataset digits · epochs 20"``."""
    return " · ".join(f"{label} **{text}**" for label, text in describe.key_fields(run.kind, run.spec))


def title_line(run: runs.JobStatus, name: str = "") -> str:
    """The row's first line: its name (when it has one), kind, state and id."""
    named = f"**{_escape(name)}** · {kinds.title(run.kind)}" if name else f"**{kinds.title(run.kind)}**"
    return f"{named} · {STATE_ICONS.get(run.state, '')} {run.state} · `{run.id}`"


def _escape(text: str) -> str:
    """A person's text shown as typed (no markdown, no ``:material/…:`` or emoji shortcodes)."""
    return "".join("\\" + c if c in "\\`*_[]()<>#+-.!|:~$" else c for c in text)


def _description(run: runs.JobStatus) -> None:
    note = notes.read(run.id)
    st.markdown(title_line(run, note.name))
    if note.note:
        st.caption(_escape(note.note))
    took = format_duration(run.elapsed_s)
    timing = {"queued": "waiting for a free slot", "running": f"running for {took}"}.get(run.state, f"took {took}")
    size = f" · {human_size(run.size)}" if run.size else ""
    st.caption(f"submitted {_when(run.created)} · {timing}{size}")
    summary = key_fields_text(run)
    if summary:
        st.caption(summary)
    if run.state in LIVE_STATES:
        st.progress(min(max(run.fraction, 0.0), 1.0), text=job_progress_text(run))
    elif run.state == "failed":
        st.error(run.message or "failed (no message)")
    elif run.state == "cancelled":
        st.caption(":material/cancel: cancelled" + (" — its partial files are kept for a resume"
                                                   if run.has_partial else ""))
    with st.expander("All settings", icon=":material/tune:"):
        st.json(run.spec or {}, expanded=False)
        if run.has_result:
            st.caption("Files: " + ", ".join(default_store().files(run.id)))
