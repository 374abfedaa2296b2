"""What a job produced: its progress events, its stored result folder, its partial folder, its thumbnail."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from engine.errors import DamagedResult
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
    """The stored result folder of a finished job (None while it has none), after checking its files against
    their checksums: :class:`engine.errors.DamagedResult` when one is missing or changed (a pass is remembered
    in this process until a file changes, so a page rerun does not hash again). An id no store can hold is a
    ``ValueError`` naming it."""
    st = records.store()
    if not st.has(job_id):
        return None
    folder = st.verify(job_id)
    if folder is not None:
        st.path(job_id)  # a use, for the LRU clock
    return folder


@contextmanager
def reading(job_id: str) -> Iterator[Path | None]:
    """``with runs.reading(job_id) as folder:`` :func:`result_dir` held for the block: eviction skips the entry
    until the block ends, so its files cannot vanish mid-read (``folder`` is None when there is no result)."""
    lease = records.store().reading(job_id)
    try:
        folder = lease.__enter__()
    except KeyError:
        lease = folder = None
    try:
        yield folder
    finally:
        if lease is not None:
            lease.__exit__(None, None, None)


def live_dir(job_id: str) -> Path | None:
    """The working folder of a job that is running now (its task's live snapshots, e.g. a grid's ``live.npz``,
    are read from there), else None: queued, finished, or its worker gone. The folder vanishes when the job
    ends (committed or kept as partial/), so a reader must expect any file in it to disappear."""
    st = records.store()
    jd = records.job_dir(st, job_id)
    return records.live_folder(jd, records.read(jd))


def partial_dir(job_id: str) -> Path | None:
    """What a cancelled/failed/killed run left in its working folder (e.g. a checkpoint), or None."""
    p = records.job_dir(records.store(), job_id) / "partial"
    return p if p.is_dir() else None


def thumbnail(run_id: str) -> bytes | None:
    """A small picture of a stored result: its kind's ``thumbnail(result_dir)``, else the store's picture file
    (e.g. ``image.png``); None when the result has no picture, is damaged (its files fail their checksums or
    do not parse) or is gone. Never raises for one bad entry, so a list of runs still shows every other row.
    Reading it does not count as a use (LRU)."""
    st = records.store()
    try:
        rec = st.record(run_id)
        if rec is None:
            return None
        with st.reading(run_id, touch=False) as folder:
            kind_name = rec.get("kind") if isinstance(rec.get("kind"), str) else ""
            kind = kinds.get(kind_name or run_id.rsplit("-", 1)[0])
            if kind is not None and kind.thumbnail:
                try:
                    data = kind.thumbnail_function()(folder)
                except DamagedResult as exc:
                    log.warning("thumbnail of %s: damaged: %s", run_id, exc)
                    return None
                except Exception as exc:  # a result an older engine wrote, or a kind not installed: use the file
                    log.warning("thumbnail of %s via %s failed: %s: %s", run_id, kind.thumbnail,
                                type(exc).__name__, exc)
                else:
                    if data is not None:
                        return data
            picture = st.thumbnail(run_id)
            return picture.read_bytes() if picture is not None else None
    except (KeyError, ValueError, OSError) as exc:  # gone meanwhile, damaged (DamagedResult), not an id
        if not isinstance(exc, KeyError):
            log.warning("thumbnail of %s: %s: %s", str(run_id)[:80], type(exc).__name__, exc)
        return None
