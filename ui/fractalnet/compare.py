"""Section 5 · Compare runs: test accuracy per epoch, and each column alone vs the full net, for chosen runs.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from engine.fractalnet import results
from engine.png import png_bar_chart, png_line_chart
from ui.damaged import READ_ERRORS, damaged_notice
from ui.downloads import download_row
from ui.fractalnet.run import run_label
from ui.fractalnet.setup import P


def _figures(chosen: list[str], labels: dict[str, str]) -> None:
    import runs

    loaded = []
    for rid in chosen:
        try:
            rd = runs.result_dir(rid)
            epochs = [r for r in results.read_metrics(rd) if r.get("kind") == "epoch"]
            loaded.append((rid, results.read_summary(rd), epochs))
        except READ_ERRORS as exc:
            damaged_notice(exc, key=P + "cmp_recompute_" + rid, job_id=rid, label=labels[rid])
    if len(loaded) < 2:
        return
    most = max(len(s["accuracy"]["columns"]) for _, s, _ in loaded)
    groups = [*(f"column {k}" for k in range(most)), "full net"]
    fig_acc, fig_col = go.Figure(), go.Figure()
    lines, bars = {}, {}
    for rid, summary, epochs in loaded:
        xs, ys = [r["epoch"] for r in epochs], [r.get("val_accuracy") for r in epochs]
        fig_acc.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=labels[rid]))
        cols = summary["accuracy"]["columns"]
        vals = [cols[k] if k < len(cols) else None for k in range(most)] + [summary["accuracy"]["full"]]
        fig_col.add_trace(go.Bar(x=groups, y=vals, name=labels[rid]))
        lines[rid[-6:]], bars[rid[-6:]] = (xs, ys), vals
    fig_acc.update_layout(title="Test accuracy of the full net per epoch", height=360, xaxis_title="epoch",
                          yaxis=dict(tickformat=".0%"), legend=dict(orientation="h", y=-0.25))
    fig_col.update_layout(title="Final test accuracy: each column alone and the full net", height=360,
                          barmode="group", yaxis=dict(tickformat=".0%"), legend=dict(orientation="h", y=-0.25))
    left, right = st.columns(2)
    left.plotly_chart(fig_acc, key=P + "cmp_acc", width="stretch")
    right.plotly_chart(fig_col, key=P + "cmp_col", width="stretch")
    download_row({
        "compare_accuracy.png": (png_line_chart(lines, title="Test accuracy (full net)", x_title="epoch",
                                                y_title="accuracy"), "image/png"),
        "compare_columns.png": (png_bar_chart(groups, bars, title="Final test accuracy", y_title="accuracy",
                                              y_range=(0.0, 1.0)), "image/png"),
    }, key=P + "cmp-dl")


def _stored(run_id: str) -> bool:
    """Whether the run's result is in the store and whole (a damaged one says so in its own Results section)."""
    import runs

    try:
        return runs.result_dir(run_id) is not None
    except READ_ERRORS:
        return False


def compare_section(all_runs: list) -> None:
    """Overlay two or more finished runs of ``all_runs``."""
    finished = [r for r in all_runs if r.state == "done" and _stored(r.id)]
    if len(finished) < 2:
        st.caption("Finish two or more runs to overlay their curves and per-column accuracies here.")
        return
    labels = {r.id: run_label(r) for r in finished}
    key = P + "compare"
    st.session_state[key] = [k for k in (st.session_state.get(key) or []) if k in labels]
    chosen = st.multiselect("Runs", list(labels), key=key, format_func=lambda k: labels[k])
    if len(chosen) >= 2:
        _figures(chosen, labels)
    else:
        st.caption("Pick two or more runs.")
