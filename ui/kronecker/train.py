"""The Train tab: the training setup (widgets from the spec's declarations), the background job, and a finished
run's table, curves, learned edge weights and downloads.

A setup's job id is its store key, so a setup trained before (by anyone, or opened from the Runs page) shows its
stored result instead of a Train button.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import runs
from cache import default_store
from engine.kronecker import drawing, export, results
from engine.kronecker.graph import KronGraph
from engine.kronecker.spec import BASELINES, KronSpec, KronTrainSpec
from engine.kronecker.tasks import TASKS
from engine.specs import fields_of
from ui.damaged import READ_ERRORS, damaged_notice
from ui.downloads import download_row
from ui.jobs import job_progress_panel, live_job_fragment
from ui.kronecker import link
from ui.kronecker.figures import adjacency_figure, curves_figure, model_curves
from ui.spec_form import spec_input

INTRO = ("Train the graph above as a network beside fair baselines: the **base graph alone** (same layers, fewer "
         "applications), a **plain sequential stack** as deep as one stream with its width matched to the tied "
         "net's parameters, and the **untied** Kronecker net (one layer per node and stream).")
#: Streamlit forgets a widget's value while it is not drawn (the page stops before the tabs while the graph is
#: invalid) and the browser then redraws it at its minimum: every setting here keeps its value for the session.
KEEP = "session"
DOWNLOAD_ICON = ":material/download:"
TABLE_FORMAT = {"test_accuracy": st.column_config.NumberColumn(format="%.4f"),
                "train_time_s": st.column_config.NumberColumn("time (s)", format="%.1f")}


def _input(name: str, **kwargs):
    info = next(i for i in fields_of(KronTrainSpec) if i.name == name)
    return spec_input(KronTrainSpec, name, key=link.train_key(info), persist_state=KEEP, **kwargs)


def setup_form(graph_spec: KronSpec) -> KronTrainSpec | None:
    """The training widgets; the spec they describe, or None after showing why it cannot train."""
    ss = st.session_state
    for err in link.train_link_errors():
        st.warning(f"Ignored link parameter {err}")
    st.markdown(INTRO)
    c = st.columns(4)
    with c[0]:
        _input("task", format_func=lambda t: f"{t} — {TASKS[t].description}")
    with c[1]:
        _input("block", help=f"digits usually uses '{TASKS['digits'].default_block}', sort "
                             f"'{TASKS['sort'].default_block}'")
    with c[2]:
        _input("edge_weights")
    with c[3]:
        _input("combine")
    c = st.columns(6)
    for col, name in zip(c, ("width", "heads", "epochs", "lr", "batch_size", "seed")):
        with col:
            _input(name, **({"disabled": ss.kt_block != "transformer"} if name == "heads" else {}))
    c = st.columns([1, 3])
    with c[0]:
        _input("tied")
    c[1].multiselect("Baselines", list(BASELINES), key="kt_baselines", persist_state=KEEP)
    values = {info.name: ss[link.train_key(info)] for info in fields_of(KronTrainSpec)}
    try:
        return KronTrainSpec(graph=graph_spec, baselines=tuple(ss.kt_baselines), **values)
    except ValueError as exc:
        st.error(f"**Cannot train this setup.** {exc}")
        return None


def setup_text(spec: KronTrainSpec) -> str:
    """What Train runs, in one line: the models and every setting (read from the spec, never from the widgets)."""
    heads = f" · {spec.heads} heads" if spec.block == "transformer" else ""
    return (f"Train runs {', '.join(spec.model_names())} on {spec.task} ({spec.block} blocks, "
            f"{'tied' if spec.tied else 'untied'}, edge weights {spec.edge_weights}, combine {spec.combine}) · "
            f"width {spec.width}{heads} · {spec.epochs} epochs · lr {spec.lr:g} · batch {spec.batch_size} · "
            f"seed {spec.seed}")


def _live(job_id: str) -> None:
    events = runs.events(job_id)
    if not events:
        st.caption("Waiting for the first training steps (loading data, building the models)…")
        return
    a, b = st.columns(2)
    a.plotly_chart(model_curves(events, "loss", "training loss (per batch)"), key="kt_live_loss", width="stretch")
    b.plotly_chart(model_curves(events, "test_accuracy", "test accuracy (per epoch)", x="epoch"),
                   key="kt_live_acc", width="stretch")


def job_section(spec: KronTrainSpec) -> str | None:
    """Start, watch or find the job of ``spec``; returns its id once it is done."""
    job_id = link.opened_run(spec) or default_store().key("kron_train", spec)
    status = runs.status(job_id)
    state = getattr(status, "state", None)
    st.caption(f"{setup_text(spec)} · job `{job_id}`")
    if state is None or state in ("failed", "cancelled"):
        if st.button("Train", key="kt_train", type="primary", icon=":material/play_arrow:"):
            st.session_state.kt_job = runs.submit("kron_train", spec)
            st.rerun()
    if state is None:
        st.info("Not trained yet with these settings. Training runs as a background job: you can leave the page "
                "and come back, or open the Runs page.")
        return None
    if state in ("queued", "running"):
        live_job_fragment(job_id, key="kt", title="Training", extra=lambda _status: _live(job_id))
        return None
    job_progress_panel(job_id, key="kt_done", cancellable=False)
    return job_id if state == "done" else None


def _edge_weights(run: results.KronRun, spec: KronTrainSpec, graph: KronGraph) -> None:
    pick = st.selectbox("Edge weights of", list(run.edge_weights), key="kt_ew_model")
    e = run.edge_weights[pick]
    if not len(e["rows"]):
        st.caption(f"{pick} has no edges to weight.")
        return
    n_nodes = int(e.get("nodes", graph.n_nodes))
    draw_on = graph if n_nodes == graph.n_nodes else spec.graph.base_graph()
    title = f"{pick}: edge weights ({e.get('kind')})"
    fig, note = adjacency_figure(draw_on, weights=run.edge_matrix(pick), colorbar="weight", title=title)
    if note:
        st.caption(note)
    st.plotly_chart(fig, key="kt_edge_weights", width="stretch")
    png = f"edge_weights_{pick}.png"
    download_row({png: (lambda: export.adjacency_figure_png(draw_on, run.edge_matrix(pick), title=title),
                        "image/png")}, key="kt_ew", icon=DOWNLOAD_ICON, columns=3)
    if e.get("kind") == "dynamic":
        st.caption("Dynamic gate: mean weight over the test set (each node's incoming weights sum to 1 per example).")


def result_section(job_id: str, spec: KronTrainSpec, graph: KronGraph) -> None:
    """A finished run: the comparison table, its curves, the learned edge weights, then the downloads."""
    try:
        out = runs.result_dir(job_id)
        if out is None:
            return
        run, files, checkpoints = results.read(out), results.files(out), results.checkpoints(out)
    except READ_ERRORS as exc:
        damaged_notice(exc, key="kt_recompute", job_id=job_id, kind="kron_train", spec=spec)
        return
    table = pd.DataFrame(run.table)
    st.markdown(f"**Results** — {run.metric}")
    show = [c for c in results.TABLE_COLUMNS if c in table]
    st.dataframe(table[show], hide_index=True, key="kt_table", column_config=TABLE_FORMAT)
    charts = {"loss.png": drawing.curves_drawing(run.points("curves"), "loss", "training loss (per batch)"),
              "test_accuracy.png": drawing.curves_drawing(run.points("test_curves"), "test_accuracy",
                                                          "test accuracy (per epoch)", x="epoch")}
    for col, key, chart in zip(st.columns(2), ("kt_loss", "kt_acc"), charts.values()):
        col.plotly_chart(curves_figure(chart), key=key, width="stretch")
    download_row({name: (lambda chart=chart: export.curves_png(chart), "image/png") for name, chart in charts.items()},
                 key="kt_charts", icon=DOWNLOAD_ICON, columns=3)
    if run.edge_weights:
        _edge_weights(run, spec, graph)
    st.markdown("**Downloads** — results, then one checkpoint per model (safetensors `state_dict`; load it into "
                "`engine.kronecker.net.build_models(spec)[model]`)")
    download_row(files, key="kt_results", icon=DOWNLOAD_ICON)
    download_row({name: (read, "application/octet-stream") for name, read in checkpoints.values()},
                 key="kt_ckpt", labels={name: model for model, (name, _) in checkpoints.items()}, icon=DOWNLOAD_ICON)


def train_tab(graph_spec: KronSpec, graph: KronGraph) -> None:
    """The whole Train tab for the graph on screen."""
    spec = setup_form(graph_spec)
    if spec is None:
        return
    link.write_train(spec)
    job_id = job_section(spec)
    if job_id is not None:
        result_section(job_id, spec, graph)
