"""The map while its one job runs, and what a finished map says about how it was computed (issue 15).

While the job runs, the worker writes a live snapshot after every refinement pass (``results.read_live``): the
pixels trained so far. The page fills every other pixel from its nearest trained one, so the first picture is a
coarse mosaic within seconds that sharpens pass by pass, in one job (no separate preview); a zoom's very first
picture, before the worker has trained anything, is the pixels it takes from the stored views. A finished map
computed with ``refine="boundary"`` says how many pixels were inferred and the error measured on a sample of
them, and can dim the inferred pixels; pixels taken from stored views are counted too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import streamlit as st

import runs
from engine.trainability import PHASE_SPACES, results
from engine.trainability.colours import SPECTRAL_COLORSCALE, equalized_values
from ui.heatmap import heatmap_figure
from ui.jobs import live_job_fragment
from ui.trainability import compute

LIVE_INTERVAL_S = 1.0  # how often the live map re-reads the snapshot (a 256² figure is ~1 MB of JSON)
DIM = "rgba(255,255,255,0.6)"  # the veil over inferred pixels when "Show computed pixels" is on


def fill_nearest(measure: np.ndarray, computed: np.ndarray) -> np.ndarray | None:
    """``measure`` with every pixel not yet ``computed`` taken from its nearest computed pixel (a coarse mosaic
    that sharpens as more pixels are computed); None when no pixel is computed yet."""
    computed = np.asarray(computed, dtype=bool)
    if not computed.any():
        return None
    measure = np.asarray(measure, dtype=np.float64)
    if computed.all():
        return measure
    from scipy.ndimage import distance_transform_edt

    iy, ix = distance_transform_edt(~computed, return_distances=False, return_indices=True)
    return measure[iy, ix]


def live_snapshot(job_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(measure, computed) of a running job's latest pass, or None before its first pass (or once it ended)."""
    folder = runs.live_dir(job_id)
    return None if folder is None else results.read_live(folder)


def reused_snapshot(job_id: str, spec) -> tuple[np.ndarray, np.ndarray] | None:
    """(measure, known) of the pixels ``spec`` takes from stored views (the very bits its job will reuse, e.g. a
    quarter of a 2x zoom's), or None when it takes none. The page draws them at once, before the job's worker
    has even started, so a zoom click shows a picture within a second. Looked up once per job."""
    cached = st.session_state.get("tx_reused")
    if cached is not None and cached[0] == job_id:
        return cached[1]
    from engine.trainability.reuse import known_pixels
    from runs.stored import StoredGrids

    measure, known = known_pixels(spec, StoredGrids())
    snap = (measure, known) if known.any() else None
    st.session_state["tx_reused"] = (job_id, snap)
    return snap


def _snapshot_stamp(job_id: str) -> tuple | None:
    """What identifies the job's current snapshot file (it is replaced after each pass), or None."""
    folder = runs.live_dir(job_id)
    try:
        info = (folder / results.LIVE).stat() if folder is not None else None
    except OSError:
        return None
    return None if info is None else (job_id, info.st_mtime_ns, info.st_size)


def live_picture(jobs: compute.ViewJobs, height: int):
    """``(figure, caption)`` of the running job's map (or of the pixels it reuses, before its first pass), or
    None before there is either. Built once per snapshot: the map redraws every second but a snapshot changes
    once per pass, and rebuilding a 256² figure each second took a third of a core from the job it showed."""
    stamp = _snapshot_stamp(jobs.job_id) or (jobs.job_id, "reused")
    cached = st.session_state.get("tx_live_picture")
    if cached is not None and cached[0] == stamp:
        return cached[1]
    snap = live_snapshot(jobs.job_id) if stamp[1] != "reused" else None
    reused = snap is None
    if reused:
        snap = reused_snapshot(jobs.job_id, jobs.spec)
    filled = None if snap is None else fill_nearest(*snap)
    picture = None
    if filled is not None:
        spec = jobs.spec
        phase = PHASE_SPACES[spec.phase_space]
        # float32 colours: plotly sends them as a typed array, a quarter of the JSON of float64 text
        fig = heatmap_figure(equalized_values(filled).astype(np.float32), (*spec.x_range, *spec.y_range),
                             colorscale=SPECTRAL_COLORSCALE, zmin=-1, zmax=1, x_title=phase.x_label,
                             y_title=phase.y_label, height=height)
        fig.update_xaxes(fixedrange=True)
        fig.update_yaxes(fixedrange=True)
        share = float(np.mean(snap[1]))
        if reused:
            caption = (f":material/hourglass_top: Starting: {100 * share:.0f}% of the pixels taken from the "
                       "stored views (the others show their nearest one); the map sharpens as the job trains the "
                       "rest. Click to zoom once it is done.")
        else:
            caption = (f":material/hourglass_top: Computing: {100 * share:.0f}% of the pixels trained so far "
                       "(the others show their nearest trained pixel); the map sharpens pass by pass. Click to "
                       "zoom once it is done.")
        picture = (fig, caption)
    st.session_state["tx_live_picture"] = (stamp, picture)
    return picture


def live_map(jobs: compute.ViewJobs, height: int, placeholder) -> None:
    """The running job's map, redrawn every :data:`LIVE_INTERVAL_S` from its live snapshot (before the first
    one, from the pixels it reuses from stored views); ``placeholder()`` draws what stands in for it until
    there is either. The progress panel beside the map reruns the page when the job ends, and the page then
    draws the stored result."""
    def draw(_status: Any) -> None:
        picture = live_picture(jobs, height)
        if picture is None:
            placeholder()
            return
        fig, caption = picture
        st.plotly_chart(fig, key="tx_live_map", width="stretch",
                        config={"displaylogo": False, "scrollZoom": False, "displayModeBar": False})
        st.caption(caption)

    live_job_fragment(jobs.job_id, key="tx_live", interval=LIVE_INTERVAL_S, draw=draw,
                      rerun_app_when_finished=False)


def stats_of(shown: results.GridFiles) -> Mapping[str, Any] | None:
    return getattr(shown, "stats", None)


def result_notes(spec, stats: Mapping[str, Any] | None) -> list[str]:
    """What a finished map says about how it was computed: the share of inferred pixels and the error measured
    on a sample of them (a refined map), and the pixels taken from stored views."""
    if not stats:
        return []
    notes = []
    pixels = int(stats.get("pixels") or 0)
    if pixels and getattr(spec, "refine", "exact") != "exact":
        text = f"inferred {100 * int(stats.get('inferred') or 0) / pixels:.0f}% of pixels"
        rate, ci = stats.get("error_rate"), stats.get("error_ci")
        if int(stats.get("sample_size") or 0) and rate is not None and math.isfinite(rate) and ci:
            # the exact interval is lopsided at rare errors (0 of 2,500: 0-0.15%), so both ends, not a "±"
            text += f"; sampled error {100 * rate:.2g}% (95% interval {100 * ci[0]:.2g}–{100 * ci[1]:.2g}%)"
            text += f" ({int(stats.get('sample_errors') or 0)} wrong of {int(stats['sample_size']):,} sampled)"
        notes.append(text)
    reused = int(stats.get("reused") or 0)
    if pixels and reused:
        notes.append(f"reused {reused:,} of {pixels:,} pixels from stored views")
    return notes


def computed_mask(shown: results.GridFiles) -> np.ndarray | None:
    """The pixels trained (not inferred) of a map that has inferred ones; None when every pixel was trained."""
    computed = getattr(shown, "computed", None)
    if computed is None or bool(np.all(computed)):
        return None
    return np.asarray(computed, dtype=bool)


def overlay_computed(fig, computed: np.ndarray, view) -> None:
    """Veil the inferred pixels of ``fig``'s map (drawn just above the map, below the click overlay), so the
    trained ones stand out."""
    import plotly.graph_objects as go

    ny, nx = computed.shape
    x0, x1, y0, y1 = view
    fig.add_trace(go.Heatmap(x=np.linspace(x0, x1, nx), y=np.linspace(y0, y1, ny),
                             z=np.where(computed, np.nan, 1.0), colorscale=[[0, DIM], [1, DIM]], zmin=0, zmax=1,
                             showscale=False, hoverinfo="skip", name="inferred"))
    data = fig.data
    fig.data = (data[0], data[-1], *data[1:-1])


def veil(fig, shown: results.GridFiles) -> None:
    """Before the chart is drawn: the veil over inferred pixels when "Show computed pixels" is on."""
    mask = computed_mask(shown)
    if mask is not None and st.session_state.get("tx_show_computed"):
        spec = shown.spec
        overlay_computed(fig, mask, (*spec.x_range, *spec.y_range))


def result_section(shown: results.GridFiles) -> None:
    """Under a finished map: how it was computed, and the "Show computed pixels" switch of a refined map."""
    for note in result_notes(shown.spec, stats_of(shown)):
        st.caption(f":material/insights: {note[0].upper()}{note[1:]}")
    if computed_mask(shown) is not None:
        st.checkbox("Show computed pixels", key="tx_show_computed",
                    help="Dim the pixels that were inferred from their block's verdict, so the trained ones "
                         "(around the boundary) stand out.")
