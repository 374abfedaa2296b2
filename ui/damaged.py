"""A stored result that cannot be read: one notice for every page, "This stored result is damaged (…)", with a
Recompute button that deletes the entry and submits the same spec again.

Readers raise ``engine.errors.DamagedResult`` (a missing or unparsable file, a checksum that does not match);
an ``OSError``/``ValueError``/``EOFError`` escaping a reader means the same thing here, so a file damaged on disk
is never a traceback and never a dead end. Each page section that reads a result catches :data:`READ_ERRORS`
and calls :func:`damaged_notice`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from engine.errors import DamagedResult

READ_ERRORS = (DamagedResult, OSError, ValueError, EOFError)


def what(exc: BaseException) -> str:
    """What is wrong, in a few words: the reader's message (its file when the message does not name it)."""
    text = str(exc).strip() or type(exc).__name__
    path = getattr(exc, "path", None)
    if path and str(path) not in text:
        text = f"{text}: {path}"
    return text if len(text) <= 300 else text[:299] + "…"


def _spec_of(job_id: str) -> tuple[str | None, Any]:
    """The kind and spec object of a stored run, rebuilt from its record ((None, None) when they cannot be)."""
    import runs

    try:
        status = runs.status(job_id)
        kind = runs.KINDS.get(status.kind) if status is not None and status.spec else None
        return (status.kind, kind.spec_class().from_dict(status.spec)) if kind is not None else (None, None)
    except (ImportError, AttributeError, TypeError, *READ_ERRORS):
        return None, None


def recompute(job_id: str, kind: str, spec: Any) -> str:
    """Delete the damaged entry (and its job record), then submit ``spec`` again; the new job's id (the same id:
    a job's id is its spec's store key)."""
    import runs

    runs.delete(job_id)
    return runs.submit(kind, spec)


def _on_recompute(job_id: str, kind: str, spec: Any, then: Callable[[str], None] | None) -> None:
    new_id = recompute(job_id, kind, spec)
    if then is not None:
        then(new_id)


def damaged_notice(exc: BaseException, *, key: str, job_id: str | None = None, kind: str | None = None,
                   spec: Any = None, label: str | None = None, then: Callable[[str], None] | None = None) -> None:
    """Say that a stored result is damaged and, for ``job_id``, offer to recompute it.

    ``kind`` and ``spec`` (the spec object) say what to submit again; without them they are rebuilt from the
    run's record. ``label`` names which result when a section reads several (e.g. ``"Level 2"``); ``then(new_id)``
    runs after the new job was submitted (e.g. to open it).
    """
    text = f"stored result is damaged ({what(exc)})."
    st.error(f"{label}: this {text}" if label else f"This {text}", icon=":material/broken_image:")
    if job_id is None:
        return
    if spec is None or kind is None:
        kind, spec = _spec_of(job_id)
    if spec is None:
        st.caption("Its settings cannot be read back either: delete it on the Runs page.")
        return
    st.button("Recompute", key=key, on_click=_on_recompute, args=(job_id, kind, spec, then),
              icon=":material/refresh:", help="Delete the damaged result and compute the same settings again")
