"""A finished run: headline numbers, its curves, each column alone against the full net, the confusion matrix,
learned join weights, and its files and figures to download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from engine.errors import DamagedResult
from engine.fractalnet import results
from ui.damaged import READ_ERRORS, damaged_notice
from ui.downloads import download_row
from ui.format import format_duration
from ui.fractalnet.curves import curves_pair
from ui.fractalnet.diagram import COLUMN_COLORS
from ui.fractalnet.setup import P, open_run


class Result(NamedTuple):
    id: str
    dir: Path
    spec: dict
    summary: dict
    rows: list[dict]
    checkpoint: Any  # engine.fractalnet.checkpoint.Checkpoint, or None when it cannot be loaded


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint…")
def _checkpoint(result_dir: str):
    return results.load_model(result_dir)  # a result folder never changes once stored


def _headline(summary: dict) -> None:
    acc = summary["accuracy"]
    deepest = acc["columns"][-1]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("test accuracy, full net", f"{acc['full']:.2%}")
    m2.metric("deepest column alone", f"{deepest:.2%}", delta=f"{100 * (deepest - acc['full']):+.2f} pts",
              delta_color="off")
    m3.metric("training speed", f"{summary['timings']['train_images_per_s']:,.0f} images/s")
    m4.metric("training time", format_duration(summary["timings"]["train_s"]))


def _columns_figure(summary: dict) -> None:
    acc = summary["accuracy"]
    ncol = len(acc["columns"])
    depths = summary.get("column_depths") or [None] * ncol
    accs = [*acc["columns"], acc["full"]]
    fig = go.Figure(go.Bar(
        x=[f"column {k}" for k in range(ncol)] + ["full net"], y=accs, text=[f"{a:.2%}" for a in accs],
        textposition="outside", marker_color=[*COLUMN_COLORS[:ncol], "#111"],
        hovertext=[f"depth {d} convs" for d in depths] + ["all columns joined"], hoverinfo="text+y",
    ))
    fig.update_layout(title="Each column alone vs. the full net (test accuracy)", height=360,
                      yaxis=dict(range=[max(0.0, min(accs) - 0.1), 1.0], tickformat=".0%"),
                      margin=dict(l=40, r=10, t=50, b=40))
    st.plotly_chart(fig, key=P + "columns_fig", width="stretch")
    st.caption(
        "The paper's claim: with drop-path, every column is a working network on its own, and the deepest column "
        "alone nearly matches the full net. Depths: "
        + ", ".join(f"column {k}: {d} convs" for k, d in enumerate(depths))
    )


def _confusion_figure(summary: dict) -> None:
    cm = np.asarray(summary["confusion_matrix"])
    classes = summary.get("classes") or [str(i) for i in range(len(cm))]
    fig = go.Figure(go.Heatmap(z=cm, x=classes, y=classes, colorscale="Blues", text=cm,
                               texttemplate="%{text}" if len(classes) <= 20 else None,
                               hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_layout(title="Confusion matrix (test split, full net)", height=360,
                      xaxis=dict(title="predicted", type="category"),
                      yaxis=dict(title="true", type="category", autorange="reversed"),
                      margin=dict(l=40, r=10, t=50, b=40))
    st.plotly_chart(fig, key=P + "confusion_fig", width="stretch")


def _join_weights(summary: dict) -> None:
    jw = summary.get("join_weights")
    if not jw:
        return
    st.markdown("**Learned join weights** (softmax over each join's inputs with every path active; equal weights "
                "are the paper's mean)")
    table: dict[str, list] = {"block": [], "join at depth": [], "columns": [], "weights": []}
    for b, joins in enumerate(jw):
        for j in joins:
            table["block"].append(b)
            table["join at depth"].append(j["position"])
            table["columns"].append(", ".join(map(str, j["columns"])))
            table["weights"].append(", ".join(f"{w:.3f}" for w in j["weights"]))
    st.dataframe(table, hide_index=True, width="stretch")


def results_section(status) -> Result | None:
    """Draw a finished run's results; return them (with its model) for the sections that use the model."""
    import runs

    try:
        rd = runs.result_dir(status.id)
        if rd is None:
            st.warning("This run's result is no longer in the store.")
            return None
        summary, rows = results.read_summary(rd), results.read_metrics(rd)
    except READ_ERRORS as exc:
        damaged_notice(exc, key=P + "recompute", job_id=status.id, then=open_run)
        return None
    st.subheader("Results")
    _headline(summary)
    curves_pair(rows, len(summary["accuracy"]["columns"]), key=f"fn-final-{status.id}")
    left, right = st.columns(2)
    with left:
        _columns_figure(summary)
    with right:
        _confusion_figure(summary)
    _join_weights(summary)
    ck = None
    try:
        ck = _checkpoint(str(rd))
    except DamagedResult as exc:
        damaged_notice(exc, key=P + "recompute_model", job_id=status.id, then=open_run)
    except (ValueError, OSError) as exc:  # e.g. "this checkpoint does not fit …": not the run's, or a bad config
        st.error(f"The checkpoint cannot be loaded: {exc}")
    return Result(status.id, rd, status.spec or {}, summary, rows, ck)


def downloads_section(result: Result, saliency_png: bytes | None) -> None:
    """The run's files, then its figures as PNG (the saliency map too when one was drawn)."""
    st.markdown("**Downloads**")
    download_row(results.download_files(result.dir), key=f"fn-dl-{result.id}")
    figures = {name: (data, "image/png") for name, data in results.figure_pngs(result.summary, result.rows).items()}
    if saliency_png is not None:
        figures["saliency.png"] = (saliency_png, "image/png")
    download_row(figures, key=f"fn-dlfig-{result.id}")
