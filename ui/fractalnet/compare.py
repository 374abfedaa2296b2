"""Section 5 · Compare runs, the way TensorBoard and W&B do: loss and accuracy of any chosen runs overlaid (one
colour per run), an exponential-moving-average smoothing slider, a log loss axis, and x = optimiser step, epoch
or wall time; below, each column alone vs the full net. Every chart downloads as the PNG of what is drawn.
"""

from __future__ import annotations

import streamlit as st

from engine.fractalnet import charts, results
from ui.damaged import READ_ERRORS, damaged_notice
from ui.fractalnet.charts import downloads, draw
from ui.fractalnet.run import run_label
from ui.fractalnet.setup import MAX_SMOOTHING, P, X_AXES, ensure_view

X_NAMES = {"step": "step", "epoch": "epoch", "time": "wall time"}


def _legend_label(run) -> str:
    """Short enough for a legend: the id's tail, which tells runs apart (the caption below says which is which)."""
    return run.id[-6:]


def _load(chosen: list[str], labels: dict[str, str]) -> list[tuple[str, dict, list[dict]]]:
    import runs

    loaded = []
    for rid in chosen:
        try:
            rd = runs.result_dir(rid)
            loaded.append((rid, results.read_summary(rd), results.read_metrics(rd)))
        except READ_ERRORS as exc:
            damaged_notice(exc, key=P + "cmp_recompute_" + rid, job_id=rid, label=labels[rid])
    return loaded


def _controls() -> tuple[str, float, bool]:
    c1, c2, c3 = st.columns([2, 3, 1.4], vertical_alignment="bottom")
    x = c1.radio("x axis", X_AXES, key=ensure_view("xaxis"), format_func=X_NAMES.get, horizontal=True,
                 help="Steps differ between batch sizes; epochs and wall time compare runs fairly. Wall time counts "
                      "training and the test passes since the run started.")
    smoothing = c2.slider(
        "Smoothing", 0.0, MAX_SMOOTHING, step=0.01, key=ensure_view("smooth"),
        help="TensorBoard's smoothing: an exponential moving average of the per-step training values with this "
             "weight (0 = raw); the raw values stay faint underneath. Test values (one per epoch) are not smoothed.",
    )
    log_y = c3.toggle("Log loss axis", key=ensure_view("logy"))
    return x, float(smoothing), bool(log_y)


def _figures(chosen: list[str], labels: dict[str, str], legend: dict[str, str]) -> None:
    loaded = _load(chosen, labels)
    if not loaded:
        return
    x, smoothing, log_y = _controls()
    curves = [(legend[rid], rows) for rid, _, rows in loaded]
    figs = {
        "compare_loss.png": charts.compare_chart(curves, "loss", x=x, smoothing=smoothing, log_y=log_y),
        "compare_accuracy.png": charts.compare_chart(curves, "accuracy", x=x, smoothing=smoothing),
        "compare_columns.png": charts.compare_columns_chart([(legend[rid], s) for rid, s, _ in loaded]),
    }
    left, right = st.columns(2)
    with left:
        draw(figs["compare_loss.png"], key=P + "cmp_loss")
    with right:
        draw(figs["compare_accuracy.png"], key=P + "cmp_acc")
    untimed = [legend[rid] for rid, _, rows in loaded if x == "time" and not any(charts.wall_times(rows))]
    if untimed:
        st.caption(f"No timings recorded, so not on the wall-time axis: {', '.join(untimed)}.")
    draw(figs["compare_columns.png"], key=P + "cmp_col")
    st.caption("Runs by the last six characters of their id: "
               + "; ".join(f"`{legend[rid]}` = {labels[rid]}" for rid, _, _ in loaded))
    downloads(figs, key=P + "cmp-dl")


def _stored(run_id: str) -> bool:
    """Whether the run's result is in the store and whole (a damaged one says so in its own Results section)."""
    import runs

    try:
        return runs.result_dir(run_id) is not None
    except READ_ERRORS:
        return False


def compare_section(all_runs: list) -> None:
    """Overlay any finished runs of ``all_runs`` (one is enough to smooth or re-axis its curves)."""
    finished = [r for r in all_runs if r.state == "done" and _stored(r.id)]
    if not finished:
        st.caption("Finished runs can be overlaid here: loss and accuracy, smoothed, against step, epoch or wall "
                   "time.")
        return
    labels = {r.id: run_label(r) for r in finished}
    legend = {r.id: _legend_label(r) for r in finished}
    key = P + "compare"
    st.session_state[key] = [k for k in (st.session_state.get(key) or []) if k in labels]
    chosen = st.multiselect("Runs", list(labels), key=key, format_func=lambda k: labels[k],
                            placeholder="Pick the runs to overlay")
    if chosen:
        _figures(chosen, labels, legend)
    else:
        st.caption("Pick one or more runs.")
