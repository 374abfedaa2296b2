"""What a job produced: its progress events, its stored result folder, its partial folder, its thumbnail."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from runs import kinds, records

log = logging.getLogger(__name__)


def event_log(job_id: str, since: int = 0) -> list[dict]:
    """The job's event lines from index ``since``: ``{"t": time, "fraction": f, "info": {...}}``."""
    path = records.job_dir(records.store(), job_id) / "events.jsonl"
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being appended right now
            break
    return out[since:]


def events(job_id: str, since: int = 0) -> list[dict]:
    """The info dicts the task passed to ``progress()``, in order, from index ``since`` (for live curves)."""
    return [e.get("info") for e in event_log(job_id, since)]


def result_dir(job_id: str) -> Path | None:
    """The stored result folder of a finished job (None while it has none)."""
    st = records.store()
    return st.path(job_id) if st.has(job_id) else None


def partial_dir(job_id: str) -> Path | None:
    """What a cancelled/failed/killed run left in its working folder (e.g. a checkpoint), or None."""
    p = records.job_dir(records.store(), job_id) / "partial"
    return p if p.is_dir() else None


def thumbnail(run_id: str) -> bytes | None:
    """A small picture of a stored result: its kind's ``thumbnail(result_dir)``, else the store's picture file
    (e.g. ``image.png``); None when the result has no picture. Reading it does not count as a use (LRU)."""
    st = records.store()
    rec = st.record(run_id)
    if rec is None:
        return None
    folder = st.path(run_id, touch=False)
    kind = kinds.get(rec.get("kind") or run_id.rsplit("-", 1)[0])
    data = None
    if kind is not None and kind.thumbnail:
        try:
            data = kind.thumbnail_function()(folder)
        except Exception as exc:  # a result an older engine wrote, or a kind not installed: use the file
            log.warning("thumbnail of %s via %s failed: %s: %s", run_id, kind.thumbnail, type(exc).__name__, exc)
    if data is None:
        picture = st.thumbnail(run_id)
        data = picture.read_bytes() if picture is not None else None
    return data
