"""Every run at once, as the Runs page and ``python -m runs list`` show them."""

from __future__ import annotations

import logging
from typing import Any

from runs import records
from runs.lifecycle import delete, status
from runs.records import JobStatus

log = logging.getLogger(__name__)


def list_jobs() -> list[JobStatus]:
    """Every job with a record, newest first."""
    st = records.store()
    out = [s for jd, _ in records.all_records(st) if (s := status(jd.name)) is not None]
    out.sort(key=lambda s: s.created or 0, reverse=True)
    return out


def list_runs() -> list[JobStatus]:
    """Every job and every stored result (one row per id), newest first. A damaged entry is a row too (failed,
    with the reason), and never stops the others from being listed."""
    st = records.store()
    rows = {s.id: s for s in list_jobs()}
    for rec in st.entries():
        if rec["key"] not in rows:
            try:
                s = records.to_status(st, rec["key"], None)
            except (OSError, ValueError) as exc:  # removed or damaged between the listing and this read
                log.warning("runs: cannot list %s: %s: %s", rec["key"], type(exc).__name__, exc)
                continue
            if s is not None:
                rows[s.id] = s
    return sorted(rows.values(), key=lambda s: s.created or 0, reverse=True)


def clear_all() -> int:
    """Delete every job (stopping running ones) and every stored result; return how many ids were removed."""
    ids = {s.id for s in list_runs()}
    for job_id in ids:
        delete(job_id)
    records.store().clear()
    return len(ids)


def spec_summary(spec: dict | None, max_items: int = 8, max_len: int = 160) -> str:
    """A one-line ``field=value`` digest of a spec dict (nested dicts flattened with dots) for tables."""
    if not spec:
        return ""
    items: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
            return
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, (list, tuple)):
            parts = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in value[:4]]
            text = "[" + ", ".join(parts) + (", …" if len(value) > 4 else "") + "]"
        else:
            text = str(value)
        items.append(f"{prefix[:-1] if prefix.endswith('.') else prefix}={text}")

    for k, v in spec.items():
        walk(f"{k}.", v)
    more = len(items) - max_items
    text = ", ".join(items[:max_items]) + (f", … (+{more})" if more > 0 else "")
    return text if len(text) <= max_len else text[: max_len - 1] + "…"
