"""The "Fractal dimension" tab: the boundary's box-counting dimension in this view, pooled over the levels
visited, and the published value of the experiment beside them, with the log-log plot and CSVs behind them."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine.trainability import combined_dimension, published_dimension
from ui.damaged import READ_ERRORS, damaged_notice
from ui.downloads import download_row
from ui.trainability import compute, session


PAPER_MIN_BOXES = 16  # fewer 10-px boxes on the boundary: the paper's local slopes are ratios of a few counts


def paper_problem(est) -> str | None:
    """Why the paper's estimate of one image means nothing (None when it can be shown): no estimate at all, or
    so few boxes of the smallest size on the boundary that its local slopes are 0 or noise (a 64-px map gives
    about 10 boxes of 10 px; the paper measured 4096-px images)."""
    if not math.isfinite(est.paper_dimension) or not len(est.paper_counts):
        return est.reason or "the boundary is too small for the paper's method"
    most = int(max(est.paper_counts))
    if most < PAPER_MIN_BOXES:
        return (f"only {most} boxes of {int(est.paper_sizes[0])} px touch the boundary; the paper's estimator needs "
                f"{PAPER_MIN_BOXES} or more (compute a finer resolution)")
    return None


def _fmt(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _interval(interval) -> str | None:
    lo, hi = interval
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return f"95 % interval {lo:.3f} – {hi:.3f}"


def dimension_section(state: dict, jobs: compute.ViewJobs) -> None:
    if jobs.shown is None:
        st.info("The dimension of the boundary is measured once the map is computed.")
        return
    est = jobs.shown.estimate()
    visited = []
    for lvl, v in enumerate(state["path"]):
        spec = session.view_spec(state, v)[0]
        try:
            result = compute.result_of(spec)
        except READ_ERRORS as exc:  # another level's stored grid: left out of the pooled estimate, and said so
            damaged_notice(exc, key=f"tx_dim_recompute_{lvl}", job_id=compute.grid_id(spec), kind="grid",
                           spec=spec, label=f"Level {lvl}")
            continue
        if result is not None:
            visited.append((lvl, v, result.estimate()))
    combined = combined_dimension([e for _, _, e in visited]) if visited else None
    published = published_dimension(state["preset"])
    paper_why = paper_problem(est)
    pooled_ok = visited and not any(paper_problem(e) for _, _, e in visited)
    c = st.columns(4)
    c[0].metric("This view", _fmt(est.dimension), delta=_interval(est.interval), delta_color="off",
                delta_arrow="off",
                help="Least-squares slope of log N against log box size, over the sizes where counts are "
                     "neither saturated nor too few.")
    c[1].metric("Paper's estimator", "—" if paper_why else _fmt(est.paper_dimension),
                help="This view, as the paper computed it: the median local slope over 10 log-spaced box sizes "
                     "from 10 px (porespy's boxcount).")
    if combined is not None:
        c[2].metric(f"Levels visited ({len(visited)})", _fmt(combined.dimension),
                    delta=_interval(combined.interval), delta_color="off", delta_arrow="off",
                    help="One slope fitted to every visited level's box counts. The paper's estimator pooled "
                         f"over the same levels: {_fmt(combined.paper_dimension) if pooled_ok else '—'}")
    if published:
        c[3].metric("Published", f"{published['value']:.2f}",
                    help=f"Sohl-Dickstein (2024), experiment: {published['experiment']}")
    if paper_why and paper_why != est.reason:
        st.caption(f"Paper's estimator: — because {paper_why}.")
    if est.reason:
        st.caption(f"Note: {est.reason}")
    if len(est.sizes):
        st.plotly_chart(_loglog_figure(est), key="tx_dim_plot", width="stretch")
    if published:
        st.caption(f"**Published**, experiment *{published['experiment']}*: {published['note']}")
    rows = pd.DataFrame(est.table())
    levels = pd.DataFrame([
        {"level": lvl, "x0": v[0], "x1": v[1], "y0": v[2], "y1": v[3], "dimension": e.dimension,
         "interval_low": e.interval[0], "interval_high": e.interval[1], "paper_dimension": e.paper_dimension}
        for lvl, v, e in visited
    ])
    download_row({
        "box_counts.csv": (rows.to_csv(index=False).encode(), "text/csv"),
        "dimension_by_level.csv": (levels.to_csv(index=False).encode(), "text/csv"),
    }, key="tx_dl_dim", icon=":material/download:",
        labels={"box_counts.csv": "Box counts (CSV)", "dimension_by_level.csv": "Estimates per level (CSV)"})


def _loglog_figure(est) -> go.Figure:
    """Box counts against box size, the sizes inside the fit, the fitted line and the paper's counts."""
    fig = go.Figure()
    fit = est.in_fit
    fig.add_trace(go.Scatter(x=est.sizes[~fit], y=est.counts[~fit], mode="markers", name="box counts",
                             marker=dict(color="#999", size=8)))
    fig.add_trace(go.Scatter(x=est.sizes[fit], y=est.counts[fit], mode="markers", name="counts in the fit",
                             marker=dict(color="#3288bd", size=9)))
    if math.isfinite(est.dimension):
        fig.add_trace(go.Scatter(x=est.sizes[fit], y=est.fitted_counts()[fit], mode="lines",
                                 name=f"fit: slope −{est.dimension:.3f}", line=dict(color="#d53e4f")))
    if len(est.paper_sizes):
        fig.add_trace(go.Scatter(x=est.paper_sizes, y=est.paper_counts, mode="markers", name="paper's counts",
                                 marker=dict(symbol="x", color="#5e4fa2", size=8)))
    fig.update_xaxes(type="log", title="box size s (pixels)")
    fig.update_yaxes(type="log", title="boxes N(s) touching the boundary")
    fig.update_layout(height=380, margin=dict(l=60, r=20, t=30, b=50), legend=dict(orientation="h", y=1.08, x=0))
    return fig
