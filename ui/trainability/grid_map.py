"""The map and the column beside it: the heatmap you click or box-select to zoom (while the view's job runs, its
live snapshot sharpening pass by pass; a placeholder as tall as the map before the first pass), the converged
fraction, the job's live progress and the downloads."""

from __future__ import annotations

import numpy as np
import streamlit as st

from engine.trainability import PHASE_SPACES
from engine.trainability.colours import SPECTRAL_COLORSCALE, equalized_values, legend_colours
from engine.trainability.cost import AUTO_COMPUTE_LIMIT_S
from ui.damaged import damaged_notice
from ui.downloads import download_row
from ui.format import LIVE_STATES, format_duration
from ui.heatmap import coordinate_decimals, format_coordinate, heatmap_figure
from ui.jobs import live_job_fragment
from ui.trainability import compute, navigation, pixel, progressive, session

MAP_HEIGHT = 640
# Plotly's own view buttons only enlarge pixels (and one is called "Zoom out", like the page's button): the map
# keeps box select, the PNG of the plot and Streamlit's fullscreen.
MODEBAR_REMOVE = ["zoom2d", "pan2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "resetScale2d", "lasso2d"]


@st.cache_data(max_entries=64, show_spinner=False)
def _figure_payload(result_dir: str) -> tuple:
    """Colours and hover texts of a result (the slow part of drawing a 256² map, so cached per folder)."""
    r = compute.load_result(result_dir)
    m, conv, spec = r.measure, r.converged, r.spec
    ny, nx = m.shape
    (x0, x1), (y0, y1) = spec.x_range, spec.y_range
    dx, dy = coordinate_decimals(x1 - x0, max(nx, 10)), coordinate_decimals(y1 - y0, max(ny, 10))
    phase = PHASE_SPACES[spec.phase_space]
    xt = [f"{phase.x_short} = 10^{format_coordinate(v, dx)} = {10 ** v:.5g}" for v in spec.x_values]
    yt = [f"{phase.y_short} = 10^{format_coordinate(v, dy)} = {10 ** v:.5g}" for v in spec.y_values]
    verdict = np.where(conv, "converged", "diverged")
    hover = np.empty((ny, nx), dtype=object)
    for i in range(ny):
        for j in range(nx):
            hover[i, j] = f"{xt[j]}<br>{yt[i]}<br>{verdict[i, j]} (measure {m[i, j]:.4g})"
    return equalized_values(m), hover


def map_section(state: dict, jobs: compute.ViewJobs) -> None:
    """The map of the shown result, wired for click and box zoom; or a placeholder that says what is happening
    (a damaged stored result: what is wrong, and a Recompute button)."""
    if jobs.damaged is not None:
        job_id, spec, exc = jobs.damaged
        damaged_notice(exc, key="tx_recompute", job_id=job_id, kind="grid", spec=spec)
        return
    if jobs.shown is None:
        if jobs.running:  # the job's live snapshot, redrawn as it sharpens
            progressive.live_map(jobs, MAP_HEIGHT, lambda: _placeholder(state, jobs))
        else:
            _placeholder(state, jobs)
        return
    z, hover = _figure_payload(jobs.shown_dir)
    spec = jobs.shown.spec
    phase = PHASE_SPACES[spec.phase_space]
    inspected = pixel.snapped(state, jobs)
    legend = list(zip(("converged (trainable)", "diverged"), legend_colours()))
    fig = heatmap_figure(
        z, (*spec.x_range, *spec.y_range), colorscale=SPECTRAL_COLORSCALE, zmin=-1, zmax=1, hover_text=hover,
        x_title=phase.x_label, y_title=phase.y_label, legend=legend,
        marker=(inspected["x"], inspected["y"]) if inspected else None, height=MAP_HEIGHT,
    )
    # Fixed axes: a plain drag never pans (no white margins) and nothing enlarges pixels; a zoom is a new view,
    # recomputed. "Drag a box" makes a drag box-select (Streamlit then turns clicks off, hence a mode of its own).
    fig.update_xaxes(fixedrange=True)
    fig.update_yaxes(fixedrange=True)
    if state["mode"] == "box":
        fig.update_layout(dragmode="select")
    progressive.veil(fig, jobs.shown)
    chart_key = session.map_key(state)  # a new key per view: the new view starts with an empty selection
    st.plotly_chart(fig, key=chart_key, on_select=lambda: navigation.on_map_select(chart_key),
                    selection_mode=("points", "box"), width="stretch",
                    config={"displaylogo": False, "scrollZoom": False,
                            "modeBarButtonsToRemove": MODEBAR_REMOVE})
    if state["mode"] == "box":
        st.caption("Drag a box on the map: it becomes the next view, recomputed. Clicks do nothing in this mode.")
    progressive.result_section(jobs.shown)


def _placeholder(state: dict, jobs: compute.ViewJobs) -> None:
    with st.container(height=MAP_HEIGHT, border=True):
        states = {jobs.job.state} if jobs.job is not None else set()
        if jobs.held:
            st.warning(f"This view was not started: it would take about **{format_duration(jobs.cost_s)}** on "
                       f"this machine, more than the {format_duration(AUTO_COMPUTE_LIMIT_S)} that a link or a "
                       "preset starts on its own.", icon=":material/timer:")
            st.button("Compute this view", key="tx_compute_view", on_click=compute.request_compute,
                      type="primary", icon=":material/play_arrow:")
        elif not state["autorun"] and not states:
            st.info("Press **Compute this view** in the sidebar to train the grid of networks for this "
                    "preset. A coarse picture appears within seconds and sharpens as the job goes on.",
                    icon=":material/arrow_back:")
        elif states and not states & set(LIVE_STATES):
            st.warning("This view was not computed (the job failed or was cancelled: see the right-hand "
                       "panel). Press **Compute this view** to try again.", icon=":material/error:")
        else:
            st.info("Computing this view… a coarse picture appears after the first pass and sharpens as the "
                    "job goes on (progress on the right).", icon=":material/hourglass_top:")


def info_section(state: dict, jobs: compute.ViewJobs) -> None:
    """Beside the map: the converged fraction, the live progress of the view's jobs, and the downloads."""
    if jobs.shown is not None:
        st.metric("Converged fraction", f"{100 * jobs.shown.converged.mean():.1f} %",
                  help="Share of the pixels (networks) in this view whose training converged.")
    _progress(jobs)
    if jobs.shown is not None:
        st.markdown("**Downloads**")
        shown = jobs.shown
        stem = f"trainability-{state['preset']}-L{state['level']}-{shown.measure.shape[1]}px"
        download_row({f"{stem}.png": (shown.png, "image/png"),
                      f"{stem}-measure.npy": (shown.measure_npy(), "application/octet-stream"),
                      f"{stem}-spec.json": (shown.spec_json.encode(), "application/json")},
                     key="tx_dl", columns=1, icon=":material/download:",
                     labels={f"{stem}.png": "Image (PNG, full resolution)",
                             f"{stem}-measure.npy": "Raw measure (.npy)",
                             f"{stem}-spec.json": "Spec (.json)"})


def _progress(jobs: compute.ViewJobs) -> None:
    """The view's job in the live fragment: progress, ETA and Cancel while it runs; when it ends the fragment
    reruns the page, which then draws the stored result."""
    if jobs.job is None:
        return
    where = (getattr(jobs.job, "options", None) or {}).get("scheduler")  # the job's own, not the sidebar's
    live_job_fragment(jobs.job_id, key="tx_job", title=f"This view ({jobs.spec.n_x} × {jobs.spec.n_y})"
                      + (f" on `{where}`" if where else ""))
