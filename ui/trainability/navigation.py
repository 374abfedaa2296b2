"""Moving through the plane: what a click or a dragged box on the map does, back/forward/zoom out/reset, the zoom
path as breadcrumbs and as a table. The arithmetic of a view is the engine's (``engine.trainability.views``).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import runs
from engine.trainability.views import View, box_view, snapped_zoom, view_center, zoom_view
from ui.heatmap import coordinate_decimals, format_coordinate
from ui.trainability import compute, session

FACTORS = (2.0, 4.0, 8.0, 16.0)
MODES = {"zoom": "Click to zoom", "box": "Drag a box", "inspect": "Inspect a pixel"}


def go_to(view: View) -> None:
    """Push a new view after the current level (dropping any forward history) and compute it; a view the engine
    cannot compute (narrower than float64 resolves, beyond the axis limits) is refused with its message."""
    state = session.get()
    view = tuple(float(v) for v in view)
    try:
        session.view_spec(state, view)
    except ValueError as exc:
        session.warn(state, f"Cannot zoom there — {exc}")
        return
    state["path"] = state["path"][: state["level"] + 1] + [view]
    state["level"] += 1
    state["autorun"] = True
    state["rev"] += 1
    state["notice"] = None


def click_zoom(state: dict, x: float, y: float) -> View:
    """The view a click at (x, y) zooms to: the factor narrower about the point, snapped to the full range's pixel
    lattice when the factor is a power of two, so every other pixel of the new view is a pixel of the stored one
    (a 2x click reuses a quarter of its pixels, bit for bit)."""
    return snapped_zoom(tuple(state["path"][0]), tuple(state["fields"]["resolution"]), session.current_view(state),
                        x, y, state["factor"])


def _selection_identity(boxes: list, points: list) -> tuple:
    """What a selection event selected (the box corners, or the points' coordinates), comparable across runs."""
    if boxes:
        return ("box", tuple(float(v) for v in boxes[0]["x"]), tuple(float(v) for v in boxes[0]["y"]))
    return ("points", tuple((float(p["x"]), float(p["y"])) for p in points))


def on_map_select(chart_key: str) -> None:
    """A click zooms by the factor around the point (or picks the pixel to inspect); a box zooms to the box.

    Each selection acts once. An event of a chart that an earlier action replaced (its key is not the current
    one), or the same selection again while nothing changed since it was handled (a rerun racing the click
    delivers it twice, or the next chart reports it once more), is ignored: one click is one level.
    """
    state = session.get()
    if chart_key != session.map_key(state):
        return
    event = st.session_state.get(chart_key)
    selection = getattr(event, "selection", None) or (event or {}).get("selection") or {}
    boxes = selection.get("box") or []
    points = selection.get("points") or []
    if not boxes and not points:
        return
    identity = _selection_identity(boxes, points)
    handled = st.session_state.get("tx_selection_done")
    if handled is not None and handled == (identity, state["rev"]):
        return
    if boxes:
        try:
            go_to(box_view(boxes[0]["x"], boxes[0]["y"]))
        except ValueError as exc:
            session.warn(state, str(exc))
    elif state["mode"] == "inspect":
        state["pixel"] = (float(points[0]["x"]), float(points[0]["y"]))  # snapped to the nearest pixel when drawn
        state["rev"] += 1
    else:
        x, y = float(points[0]["x"]), float(points[0]["y"])
        go_to(click_zoom(state, x, y))
    st.session_state["tx_selection_done"] = (identity, state["rev"])


def _set_level(level: int) -> None:
    state = session.get()
    state["level"] = min(max(0, level), len(state["path"]) - 1)
    state["rev"] += 1


def _step(delta: int) -> None:
    _set_level(session.get()["level"] + delta)


def _zoom_out() -> None:
    """A wider view around the same centre, as the next level; never from level 0, whose path would be lost."""
    state = session.get()
    if state["level"] == 0:
        return
    cx, cy = view_center(session.current_view(state))
    go_to(zoom_view(session.current_view(state), cx, cy, 1.0 / state["factor"]))


def _on_factor() -> None:
    session.get()["factor"] = float(st.session_state["tx_factor"])


def _on_mode() -> None:
    state = session.get()
    state["mode"] = st.session_state["tx_mode"] or "zoom"
    state["rev"] += 1


def controls(state: dict, jobs: compute.ViewJobs) -> None:
    """The row above the map: click mode, zoom factor, back/forward/zoom out/reset; the zoom path; where we are."""
    level, n = state["level"], len(state["path"])
    with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
        st.segmented_control("On the map", list(MODES), key="tx_mode", format_func=MODES.get,
                             on_change=_on_mode, required=True,
                             help="Click to zoom: a click zooms in by the factor around the point. Drag a box: "
                                  "the box you drag becomes the next view. Inspect a pixel: a click replays "
                                  "that pixel's network. Every zoom is recomputed, never enlarged.")
        st.selectbox("Zoom factor", FACTORS, key="tx_factor", format_func=lambda f: f"× {f:g}",
                     on_change=_on_factor, width=110, help="How many times narrower a click's view is")
        st.button("Back", key="tx_back", on_click=_step, args=(-1,), disabled=level == 0,
                  icon=":material/arrow_back:", help="The previous view of the zoom path")
        st.button("Forward", key="tx_fwd", on_click=_step, args=(1,), disabled=level >= n - 1,
                  icon=":material/arrow_forward:", help="Redo the zoom you went back from")
        st.button("Zoom out", key="tx_out", on_click=_zoom_out, disabled=level == 0, icon=":material/zoom_out:",
                  help="A new view, the zoom factor wider, around the same centre (the levels after this one "
                       "are replaced)" if level else
                       "Already the full range: widen it under *Advanced* in the sidebar (the zoom path stays)")
        st.button("Reset", key="tx_reset", on_click=_set_level, args=(0,), disabled=level == 0,
                  icon=":material/restart_alt:", help="Back to the full range (level 0); the zoom path stays")
    root_w = session.root_width(state)
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.markdown("**Zoom path**", width="content")
        first = max(0, n - 12)  # one button per level, the last 12, the current one highlighted
        if first:
            st.markdown("…", width="content")
        for lvl in range(first, n):
            v = state["path"][lvl]
            st.button(f"{lvl} · ×{root_w / (v[1] - v[0]):.3g}" if lvl else "0 · full range", key=f"tx_crumb_{lvl}",
                      type="primary" if lvl == level else "secondary", on_click=_set_level, args=(lvl,),
                      help=f"x ∈ [{v[0]:.12g}, {v[1]:.12g}], y ∈ [{v[2]:.12g}, {v[3]:.12g}]")
    cur = session.current_view(state)
    dx, dy = coordinate_decimals(cur[1] - cur[0], 1000), coordinate_decimals(cur[3] - cur[2], 1000)
    st.caption(f"Level {level} — x ∈ [{format_coordinate(cur[0], dx)}, {format_coordinate(cur[1], dx)}], "
               f"y ∈ [{format_coordinate(cur[2], dy)}, {format_coordinate(cur[3], dy)}] · "
               f"zoom × {root_w / (cur[1] - cur[0]):.4g} · {jobs.spec.dtype}")
    if jobs.raised:
        st.info("This view is narrower than float32 can resolve, so it is computed in **float64** "
                "(the setting asks for float32).", icon=":material/precision_manufacturing:")


def path_table(state: dict) -> None:
    """Every level visited, with its view and whether its grid was computed."""
    st.caption("Every level you visited, from the full range (level 0). Click a level in the zoom path above "
               "the map to return to it; each level's result stays in the cache.")
    root_w = session.root_width(state)
    rows = []
    for lvl, v in enumerate(state["path"]):
        s = runs.status(compute.grid_id(session.view_spec(state, v)[0]))
        rows.append({"level": lvl, "current": lvl == state["level"],
                     "zoom": f"× {root_w / (v[1] - v[0]):.4g}", "x from": v[0], "x to": v[1],
                     "y from": v[2], "y to": v[3], "status": s.state if s else "not computed"})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"current": st.column_config.CheckboxColumn("shown", help="The level on the map"),
                                **{k: st.column_config.NumberColumn(format="%.12g")
                                   for k in ("x from", "x to", "y from", "y to")}})
