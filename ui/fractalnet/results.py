"""A finished run: headline numbers, its curves, each column alone against the full net, the confusion matrix,
learned join weights, and its files and figures to download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import streamlit as st

from engine.errors import DamagedResult
from engine.fractalnet import results
from engine.fractalnet.charts import Chart, run_charts
from ui.damaged import READ_ERRORS, damaged_notice
from ui.downloads import download_row
from ui.format import format_duration, format_si
from ui.fractalnet.charts import DOWNLOAD_ICON, downloads, draw
from ui.fractalnet.curves import draw_pair
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
    speed = summary["timings"]["train_images_per_s"]
    m3.metric("training speed, images/s", format_si(speed), help=f"{speed:,.1f} training images per second")
    m4.metric("training time", format_duration(summary["timings"]["train_s"]))


def _columns_figure(chart: Chart, summary: dict) -> None:
    draw(chart, key=P + "columns_fig")
    depths = summary.get("column_depths") or [None] * len(summary["accuracy"]["columns"])
    st.caption(
        "The paper's claim: with drop-path, every column is a working network on its own, and the deepest column "
        "alone nearly matches the full net. Depths: "
        + ", ".join(f"column {k}: {d} convs" for k, d in enumerate(depths))
    )


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
    figures = run_charts(summary, rows)  # what is drawn here is what the downloads render
    draw_pair([figures["loss.png"], figures["accuracy.png"]], key=f"fn-final-{status.id}")
    left, right = st.columns(2)
    with left:
        _columns_figure(figures["columns.png"], summary)
    with right:
        draw(figures["confusion.png"], key=P + "confusion_fig")
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
    download_row(results.download_files(result.dir), key=f"fn-dl-{result.id}", icon=DOWNLOAD_ICON)
    extra = {"saliency.png": (saliency_png, "image/png")} if saliency_png is not None else None
    downloads(run_charts(result.summary, result.rows), key=f"fn-dlfig-{result.id}", extra=extra)
