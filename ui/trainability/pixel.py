"""Pixel inspection: one network of the map, its training replayed from scratch, so a user can see why a pixel
got its colour (a single network trains in milliseconds, so no job is needed)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from engine.trainability import PHASE_SPACES, GridSpec, convergence_measure, pixel_loss_curve
from engine.trainability.colours import legend_colours
from ui.trainability import compute


@st.cache_data(max_entries=32, show_spinner=False)
def _loss_curve(spec_json: str, x: float, y: float) -> np.ndarray:
    return np.asarray(pixel_loss_curve(GridSpec.from_json(spec_json), x, y), dtype=np.float64)


def snapped(state: dict, jobs: compute.ViewJobs) -> dict | None:
    """The inspected point snapped to the nearest pixel of the shown map: its indices and exact coordinates
    (the grid's own ``x_values``/``y_values``, so the replayed curve is the one the grid measured); None when
    nothing is inspected or the point is outside this view (the user zoomed or went back)."""
    if state["mode"] != "inspect" or state["pixel"] is None or jobs.shown is None:
        return None
    spec = jobs.shown.spec
    px, py = state["pixel"]
    xs, ys = spec.x_values, spec.y_values
    hx = (xs[-1] - xs[0]) / max(1, len(xs) - 1) / 2
    hy = (ys[-1] - ys[0]) / max(1, len(ys) - 1) / 2
    if not (xs[0] - hx <= px <= xs[-1] + hx and ys[0] - hy <= py <= ys[-1] + hy):
        return None
    j = int(np.argmin(np.abs(xs - px)))
    i = int(np.argmin(np.abs(ys - py)))
    return {"i": i, "j": j, "x": float(xs[j]), "y": float(ys[i])}


def inspection_section(state: dict, jobs: compute.ViewJobs) -> None:
    """The "Pixel inspection" box under the map, in inspect mode."""
    if state["mode"] != "inspect" or jobs.shown is None:
        return
    with st.container(border=True):
        st.markdown("**Pixel inspection**")
        pix = snapped(state, jobs)
        if pix is None:
            st.caption("Click a pixel of the map: its network's training is replayed here.")
        else:
            _panel(pix, jobs.shown)


def _panel(pix: dict, shown) -> None:
    i, j, xv, yv = pix["i"], pix["j"], pix["x"], pix["y"]
    m = shown.measure
    ny, nx = m.shape
    losses = _loss_curve(shown.spec_json, xv, yv)
    measure = float(convergence_measure(losses))
    verdict = "converged" if measure < 0 else "diverged"
    grid_verdict = "converged" if bool(shown.converged[i, j]) else "diverged"
    phase = PHASE_SPACES[shown.spec.phase_space]
    sx, sy = phase.x_short, phase.y_short
    c = st.columns(2) + st.columns(2)
    c[0].metric(sx, f"{10 ** xv:.6g}", help=f"log₁₀ {sx} = {xv:.15g}")
    c[1].metric(sy, f"{10 ** yv:.6g}", help=f"log₁₀ {sy} = {yv:.15g}")
    c[2].metric("Verdict (replayed)", verdict)
    c[3].metric("Convergence measure", f"{measure:.5g}",
                help="−Σ normalised losses if converged, Σ 1/normalised loss if diverged (the paper's measure); "
                     "its sign is the verdict.")
    st.caption(f"Pixel column {j}, row {i} of the {nx} × {ny} map. The grid computed measure {m[i, j]:.5g} "
               f"({grid_verdict}) for this network; the curve below is recomputed from scratch.")
    conv_color, div_color = legend_colours()
    finite = np.isfinite(losses)
    fig = go.Figure(go.Scatter(x=np.arange(len(losses))[finite], y=losses[finite], mode="lines",
                               name="training loss",
                               line=dict(color=conv_color if measure < 0 else div_color, width=2)))
    fig.update_yaxes(type="log", title="loss (MSE over the training set)")
    fig.update_xaxes(title="gradient-descent step")
    fig.update_layout(height=300, margin=dict(l=60, r=20, t=10, b=50))
    st.plotly_chart(fig, key="tx_pixel_plot", width="stretch")
    if not finite.all():
        st.caption(f"The loss became non-finite at step {int(np.argmin(finite))}: the network blew up, and every "
                   "later step counts as the cap (10⁶) in the measure.")
