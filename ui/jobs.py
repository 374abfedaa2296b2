"""The one live-progress panel for a background job: state, progress bar, ETA, cancel, a failed job's error.

It sits in a ``st.fragment(run_every=...)`` so only the panel reruns while a job is live; the job itself lives
on disk (:mod:`runs`), so a reload or a second tab shows the same panel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from ui.format import LIVE_STATES, STATE_ICONS, format_duration


def _field(status: Any, name: str, default: Any = None) -> Any:
    if isinstance(status, Mapping):
        return status.get(name, default)
    return getattr(status, name, default)


def job_progress_text(status: Any) -> str:
    """One markdown line for a job's status: ``":material/autorenew: running · 42% · about 8 s left · message"``."""
    state = _field(status, "state", "unknown")
    parts = [f"{STATE_ICONS.get(state, '')} {state}".strip()]
    fraction = _field(status, "fraction")
    if state in LIVE_STATES and fraction is not None:
        parts.append(f"{100 * float(fraction):.0f}%")
        eta = _field(status, "eta_s")
        if state == "running" and eta is not None:
            parts.append(f"about {format_duration(eta)} left")
    message = _field(status, "message")
    if message and state != "failed":
        parts.append(str(message))
    return " · ".join(parts)


def short_id(job_id: str, limit: int = 48) -> str:
    """A job id as a message shows it: a hand-made id from a link may be any length."""
    return job_id if len(job_id) <= limit else job_id[: limit - 1] + "…"


def linked_status(job_id: str) -> tuple[Any, str | None]:
    """``runs.status`` of an id that came from a link, and why it is no id at all when a store cannot hold it (too
    long for the file system, a path, ...): ``(status or None, None)`` or ``(None, why)``."""
    import runs

    try:
        status = runs.status(job_id)
    except (ValueError, OSError) as exc:
        reason = str(exc) if len(str(exc)) <= 120 else str(exc)[:119] + "…"
        return None, f"`{short_id(job_id)}` is not a valid run id ({len(job_id)} characters; {reason})"
    return status, None


def job_progress_panel(
    job_id: str | None,
    *,
    key: str,
    title: str | None = None,
    on_cancel: Callable[[str], None] | None = None,
    cancellable: bool = True,
) -> Any:
    """Draw one job's state: a progress bar with fraction and ETA, a cancel button, a failed job's error.

    Returns the ``runs.status`` object (or ``None`` when ``job_id`` is None or unknown). Put it inside
    ``st.fragment(run_every=...)`` (see ``live_job_fragment``) so only this panel reruns while the job is live;
    the job itself lives on disk, so a reload or a second tab shows the same panel.
    """
    if not job_id:
        return None
    import runs  # lazily: pages that never run a job do not import the runner

    status = runs.status(job_id)
    if status is None:
        st.warning(f"Job `{job_id}` is no longer known (it may have been deleted).")
        return None
    state = _field(status, "state")
    if title:
        st.markdown(f"**{title}**")
    if state in LIVE_STATES:
        fraction = float(_field(status, "fraction", 0.0) or 0.0)
        st.progress(min(max(fraction, 0.0), 1.0), text=job_progress_text(status))
        if cancellable and st.button("Cancel", key=f"{key}-cancel-{job_id}", icon=":material/stop_circle:",
                                     type="tertiary", help="Stop this job's process"):
            runs.cancel(job_id)
            if on_cancel is not None:
                on_cancel(job_id)
            st.rerun()
    elif state == "failed":
        st.error(f"Job failed: {_field(status, 'message') or 'no message'}")
    elif state == "cancelled":
        st.warning("Job cancelled.")
    elif state == "done":
        elapsed = _field(status, "elapsed_s")
        took = f" in {format_duration(elapsed)}" if isinstance(elapsed, (int, float)) else ""
        st.caption(f"{STATE_ICONS['done']} done{took}")
    return status


def live_job_fragment(
    job_ids: str | Sequence[str] | None,
    *,
    key: str,
    interval: float = 0.5,
    title: str | Sequence[str] | None = None,
    on_cancel: Callable[[str], None] | None = None,
    extra: Callable[[Any], None] | None = None,
    draw: Callable[[Any], None] | None = None,
    rerun_app_when_finished: bool = True,
) -> None:
    """THE live view of one or more jobs: a fragment that reruns every ``interval`` seconds while one is live.

    Each job gets ``job_progress_panel`` (``title``: one per job), or ``draw(status)`` in its place (e.g. a Runs
    row); ``extra(status)`` draws more after it (e.g. live curves). When a job changes state or disappears, the
    whole app reruns once (``rerun_app_when_finished``) so the page can draw what follows; when no job is live,
    nothing polls.
    """
    import runs

    ids = [job_ids] if isinstance(job_ids, str) else [i for i in (job_ids or []) if i]
    titles = [title] * len(ids) if title is None or isinstance(title, str) else list(title)
    before = {i: _field(runs.status(i), "state") for i in ids}
    live = any(state in LIVE_STATES for state in before.values())

    @st.fragment(run_every=interval if live else None)
    def _panel() -> None:
        changed = False
        for job_id, job_title in zip(ids, titles):
            if draw is None:
                status = job_progress_panel(job_id, key=key, title=job_title, on_cancel=on_cancel)
            else:
                status = runs.status(job_id)
                if status is not None:
                    draw(status)
            if extra is not None and status is not None:
                extra(status)
            changed = changed or _field(status, "state") != before[job_id]
        if live and rerun_app_when_finished and changed:
            st.rerun(scope="app")

    _panel()
