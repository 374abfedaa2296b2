"""The "Zoom video" tab: a video from the full range (or along the visited path) into this view, rendered as a
background job from one grid per factor-2 level, so exploring can go on meanwhile. The video is made at a chosen
output size (each keyframe pixel a sharp block) and shown at that size at most, never stretched."""

from __future__ import annotations

import streamlit as st

import runs
from cache import default_store
from engine.specs import field_info
from engine.trainability import network_steps
from engine.trainability.video import MAX_FRAME_SIDE, VideoSpec, reused_keyframes, size_text, video_files
from ui.damaged import READ_ERRORS, damaged_notice
from ui.downloads import download_row
from ui.format import format_duration
from ui.jobs import live_job_fragment
from ui.spec_form import spec_input
from ui.trainability import compute

ROUTES = ("full range → this view", "along the visited path")
SIDES = (32, 64, 96, 128, 192, 256)  # the menu of keyframe sizes
OUTPUT_SIDE = 512  # the output size offered first: the upscale that comes nearest
MAX_OUTPUT_SIDE = 1024  # the largest output the page offers (wider than its column; the CLI goes to the spec's limit)
MIME = {"mp4": "video/mp4", "gif": "image/gif"}


def _slider(col, name: str, key: str) -> int:
    """A slider over a VideoSpec field's declared range, starting at its declared default."""
    info = field_info(VideoSpec, name)
    lo, hi = (int(v) for v in info.meta.range)
    kwargs = {} if key in st.session_state else {"value": int(info.default)}
    return col.slider(info.label, lo, hi, key=key, help=info.meta.help, **kwargs)


def _upscale(col, side: int) -> int:
    """The output size, as the upscale of ``side``-pixel keyframes (the field's declared range, up to
    :data:`MAX_OUTPUT_SIDE` pixels): first the one nearest :data:`OUTPUT_SIDE` pixels; when the keyframe size
    changes, the one nearest the output size chosen before."""
    info = field_info(VideoSpec, "upscale")
    lo, hi = (int(v) for v in info.meta.range)
    factors = [k for k in range(lo, hi + 1) if side * k <= min(MAX_OUTPUT_SIDE, MAX_FRAME_SIDE)] or [lo]
    ss = st.session_state
    before = ss.get("tx_v_up_side")
    if ss.get("tx_v_up") not in factors or before != side:
        target = before * ss["tx_v_up"] if before and ss.get("tx_v_up") else OUTPUT_SIDE
        ss["tx_v_up"] = min(factors, key=lambda k: (abs(side * k - target), k))
    ss["tx_v_up_side"] = side
    return col.selectbox("Output size", factors, key="tx_v_up", format_func=lambda k: f"{side * k} px (×{k})",
                         help=info.meta.help)


def _spec(state: dict, jobs: compute.ViewJobs) -> tuple[VideoSpec | None, str | None]:
    cols = st.columns(6)
    route = cols[0].radio("Zoom", ROUTES, key="tx_v_route")
    res = field_info(VideoSpec, "resolution")
    sides = [s for s in SIDES if res.meta.range[0] <= s <= res.meta.range[1]]
    side = cols[1].selectbox(res.label, sides, index=sides.index(res.default[0]), key="tx_v_res",
                             format_func=lambda r: f"{r} × {r}", help=res.meta.help)
    upscale = _upscale(cols[2], side)
    per_level = _slider(cols[3], "frames_per_level", "tx_v_fpl")
    fps = _slider(cols[4], "fps", "tx_v_fps")
    with cols[5]:
        zoom_out = spec_input(VideoSpec, "zoom_out", key="tx_v_out")
    kwargs = dict(grid=jobs.spec, resolution=(side, side), upscale=upscale, frames_per_level=per_level, fps=fps,
                  zoom_out=zoom_out)
    if route == ROUTES[1] and state["level"] > 0:
        kwargs["path"] = tuple(tuple(v) for v in state["path"][: state["level"] + 1])
    else:
        root = state["path"][0]
        kwargs["full_x_range"], kwargs["full_y_range"] = (root[0], root[1]), (root[2], root[3])
    try:
        return VideoSpec(**kwargs), None
    except ValueError as exc:
        return None, str(exc)


def video_section(state: dict, jobs: compute.ViewJobs) -> None:
    st.caption("A zoom video recomputes one keyframe per ×2 zoom level and glides smoothly between them (as "
               "the authors' video did), so it costs a few grids, not one per frame. It runs as a job: you can "
               "keep exploring meanwhile.")
    spec, error = _spec(state, jobs)
    if spec is None:
        st.info(f"No video for this view yet — {error}", icon=":material/movie:")
        return
    grids = list({g.content_hash(): g for g in (spec.keyframe_grid(v) for v in spec.keyframes())}.values())
    # a keyframe the explorer already computed (same key) is taken from the store, not trained again
    todo = [g for g in grids if runs.result_dir(compute.grid_id(g)) is None]
    steps, seconds = sum(network_steps(g) for g in todo), sum(compute.estimate(g) for g in todo)
    stored = f" ({len(grids) - len(todo)} already stored)" if len(todo) < len(grids) else ""
    st.markdown(f"{len(spec.keyframes())} keyframes{stored}, {spec.n_frames} frames of {spec.frame_size[0]} × "
                f"{spec.frame_size[1]} px · {steps / 1e6:.3g} M network-steps · about "
                f"**{format_duration(seconds)}**")
    st.caption(f"{size_text(spec)}; shown at that size at most.")
    video_id = default_store().key("zoom_video", spec)
    if st.button("Render zoom video", key="tx_v_go", icon=":material/movie:"):
        video_id = compute.submit("zoom_video", spec, jobs.options)  # keyframes computed where maps are
    if runs.status(video_id) is None:
        return
    live_job_fragment(video_id, key="tx_v_job", title="Zoom video")
    try:
        result = runs.result_dir(video_id)
        if result is None:
            return
        files = video_files(result)
    except READ_ERRORS as exc:
        damaged_notice(exc, key="tx_v_recompute", job_id=video_id, kind="zoom_video", spec=spec)
        return
    reused = reused_keyframes(result)
    if reused:
        st.caption(f":material/recycling: {reused} of {len(spec.keyframes())} keyframes reused from stored "
                   "views (not trained again).")
    if "mp4" in files:  # never wider than the video's own pixels (Streamlit also keeps it inside the column)
        st.video(files["mp4"], format="video/mp4", loop=True, width=int(spec.frame_size[0]))
    download_row({f"zoom-{state['preset']}.{fmt}": (data, MIME[fmt]) for fmt, data in files.items()},
                 key="tx_v_dl")
