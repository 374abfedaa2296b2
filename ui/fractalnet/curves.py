"""Loss and accuracy of a run, drawn live from its job events while it trains and from its metrics when done.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from engine.fractalnet import metrics, results
from ui.curves import curves_figure
from ui.damaged import READ_ERRORS, damaged_notice
from ui.format import LIVE_STATES, format_duration
from ui.fractalnet.diagram import COLUMN_COLORS


def columns_of(spec: dict | None) -> int:
    """The number of columns of a run's model (its spec as stored)."""
    c = (spec or {}).get("model", {}).get("columns", 1)
    return max(c) if isinstance(c, list) else int(c)


def _style(fig: go.Figure, ncol: int) -> None:
    """Noisy per-step values thin and grey; the test curves of the full net and of each column stand out."""
    fig.update_traces(selector=dict(name="train (each step)"), line=dict(width=1, color="rgba(110,110,110,0.45)"))
    # Per-epoch lines get markers too: after the first epoch they are a single point, which a bare line hides.
    fig.update_traces(selector=dict(name="train (epoch mean)"), mode="lines+markers", marker=dict(size=5),
                      line=dict(width=2, color="#444", dash="dot"))
    fig.update_traces(selector=dict(name="test: full net"), mode="lines+markers", marker=dict(size=6),
                      line=dict(width=3, color="#111"))
    for k in range(ncol):
        fig.update_traces(selector=dict(name=f"test: column {k}"), mode="lines+markers", marker=dict(size=5),
                          line=dict(width=2, color=COLUMN_COLORS[k % len(COLUMN_COLORS)]))


def curves_pair(rows: list[dict], ncol: int, key: str) -> None:
    """Loss beside accuracy: each step's training value, each epoch's mean and test values per column."""
    left, right = st.columns(2)
    for col, metric, title in ((left, "loss", "Loss"), (right, "accuracy", "Accuracy")):
        pts = metrics.curve_points(rows, metric, ncol)
        with col:
            if not pts:
                st.caption(f"{title}: no points yet.")
                continue
            fig = curves_figure(pts, x="epoch", y=metrics.curve_names(ncol), title=title, y_title=metric,
                                height=340)
            _style(fig, ncol)
            st.plotly_chart(fig, key=f"{key}-{metric}", width="stretch")


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
    c1.metric("images/s", f"{now['images_per_s']:,.0f}" if now["images_per_s"] else "—")
    c2.metric("epoch", f"{now['epoch']:.2f} / {total_epochs}" if now["epoch"] is not None else f"0 / {total_epochs}")
    c3.metric("test accuracy (full net)", f"{now['val_accuracy']:.2%}" if now["val_accuracy"] is not None else "—")
    c4.metric("time left", format_duration(status.eta_s) if status.state == "running" else "—")
    curves_pair(rows, columns_of(status.spec), key=f"fn-live-{status.id}")
