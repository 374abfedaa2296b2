"""Resume a stopped run from what it left in its ``partial/`` folder (see :func:`runs.partial_dir`).

A kind is resumable when its engine can tell a usable checkpoint (``point``: ``checkpoint(folder) -> dict |
None``, the dict saying where the run stands) and its spec names the folder to continue from (``field``). The
resumed run is a new job whose spec is the old one with ``field`` set to the partial folder — the same thing the
FractalNet lab's own Resume button submits — so both buttons give the same run, and the same id.

    point = resume.resume_point(run_id)   # {"epoch": 3, "step": 150, ...} or None
    new_id = resume.resume(run_id)        # ValueError when there is nothing to resume
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from runs import kinds
from runs.lifecycle import status, submit
from runs.records import JobStatus
from runs.results import partial_dir

log = logging.getLogger(__name__)

STOPPED = ("cancelled", "failed")  # a killed worker reads as failed ("interrupted")


@dataclasses.dataclass(frozen=True)
class Resumable:
    point: str  # "module:name" of checkpoint(folder) -> dict | None
    field: str  # the spec field that names the folder to continue from


RESUMABLE: dict[str, Resumable] = {
    "fractalnet_train": Resumable(point="engine.fractalnet.checkpoint:resume_point", field="resume_from"),
}


def resume_point(run: str | JobStatus) -> dict | None:
    """Where a stopped run of a resumable kind can continue (its checkpoint's config: ``epoch``, ``step`` …);
    None when it is not stopped, its kind cannot resume, or it stopped before its first checkpoint."""
    st = status(run) if isinstance(run, str) else run
    if st is None or st.state not in STOPPED or st.kind not in RESUMABLE or not st.spec:
        return None
    folder = partial_dir(st.id)
    if folder is None:
        return None
    try:
        point = kinds.resolve(RESUMABLE[st.kind].point)(folder)
    except Exception as exc:  # noqa: BLE001 - an engine that cannot read the folder: nothing to resume
        log.warning("resume point of %s: %s: %s", st.id, type(exc).__name__, exc)
        return None
    return point if isinstance(point, dict) else None


def _known(run: str | JobStatus) -> JobStatus:
    st = status(run) if isinstance(run, str) else run
    if st is None:
        raise ValueError(f"resume: no run {str(run)[:80]!r}")
    return st


def resumed_spec(run: str | JobStatus) -> Any:
    """The spec that continues ``run`` from its partial folder (``ValueError`` naming why there is none)."""
    st = _known(run)
    if resume_point(st) is None:
        raise ValueError(f"resume: run {st.id} ({st.state}) has no checkpoint to continue from")
    kind, folder = RESUMABLE[st.kind], partial_dir(st.id)
    spec_cls = kinds.KINDS[st.kind].spec_class()
    return dataclasses.replace(spec_cls.from_dict(st.spec), **{kind.field: str(folder)})


def resume(run: str | JobStatus) -> str:
    """Submit the run that continues ``run`` from its checkpoint; return the new job's id."""
    st = _known(run)
    return submit(st.kind, resumed_spec(st))
