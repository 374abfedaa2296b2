"""Loss and accuracy of a run, drawn live from its job events while it trains and from its metrics when done.
"""

from __future__ import annotations

import streamlit as st

from engine.fractalnet import charts, metrics, results
from ui.damaged import READ_ERRORS, damaged_notice
from ui.format import LIVE_STATES, format_duration, format_si
from ui.fractalnet.charts import draw


def columns_of(spec: dict | None) -> int:
    """The number of columns of a run's model (its spec as stored)."""
    c = (spec or {}).get("model", {}).get("columns", 1)
    return max(c) if isinstance(c, list) else int(c)


def draw_pair(pair: list[charts.Chart], key: str) -> None:
    """Two charts side by side (loss beside accuracy); an empty one says so."""
    for col, chart in zip(st.columns(2), pair):
        with col:
            if chart.series:
                draw(chart, key=f"{key}-{chart.y_title}")
            else:
                st.caption(f"{chart.title}: no points yet.")


def curves_pair(rows: list[dict], ncol: int, key: str) -> None:
    """Loss beside accuracy (:func:`engine.fractalnet.charts.curves_chart`: each step's training value thin at the
    bottom, each epoch's mean and test values per column, the full net on top)."""
    draw_pair([charts.curves_chart(rows, metric, ncol) for metric in charts.METRICS], key)


def draw_live(status) -> None:
    """Inside the job fragment: speed, epoch, test accuracy and the curves from the job's event log."""
    import runs

    if status.state not in LIVE_STATES and status.state not in ("cancelled", "failed"):
        return
    try:
        prior = results.prior_rows(status.spec)
    except READ_ERRORS as exc:  # the checkpoint folder it resumed from was damaged or removed since
        damaged_notice(exc, key=f"fn-prior-{status.id}", label="The run this one resumed from")
        prior = []
    rows = metrics.join_history(prior, runs.events(status.id))
    now = metrics.progress_of(rows)
    total_epochs = (status.spec or {}).get("epochs", 0)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("images/s", format_si(now["images_per_s"]) if now["images_per_s"] else "—")
    c2.metric(f"epoch (of {format_si(total_epochs)})", f"{now['epoch'] or 0:.2f}")
    c3.metric("latest test accuracy", f"{now['val_accuracy']:.2%}" if now["val_accuracy"] is not None else "—")
    c4.metric("time left", format_duration(status.eta_s) if status.state == "running" else "—")
    curves_pair(rows, columns_of(status.spec), key=f"fn-live-{status.id}")
