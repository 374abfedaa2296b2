"""Trainability Explorer: the fractal boundary between hyperparameters that train and those that diverge.

One tiny network is trained per pixel of a grid of two hyperparameters (Sohl-Dickstein 2024); the map colours
converged against diverged, a click zooms into the boundary (every level recomputed as a background job, not
upscaled), and the panels below measure the boundary's box-counting dimension, replay a single pixel's training,
and render a zoom video. The whole state lives in the URL, so every view is a shareable link.

The page only reads widgets, builds a ``GridSpec``, submits jobs and draws their results (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import typing

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import runs
import ui
from cache import default_store
from engine import fractal_dimension as fd
from engine import render
from engine import trainability as tr

st.set_page_config(page_title="Trainability Explorer · Fractal Lab", page_icon="🌀", layout="wide")

ss = st.session_state
COARSE = 32  # side of the quick preview computed before each full-resolution view
RESOLUTIONS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
FACTORS = (2.0, 4.0, 8.0, 16.0)
MODES = {"zoom": "Zoom in", "inspect": "Inspect a pixel"}
DEFAULT_PRESET = "tanh" if "tanh" in tr.PRESETS else next(iter(tr.PRESETS))
# Fields with their own controls elsewhere on the page (ranges = the zoom path's first view; resolution in the
# sidebar), so the advanced panel does not repeat them.
OWN_CONTROLS = ("x_range", "y_range", "resolution")
FIELD_HELP = {
    "activation": "Non-linearity of the hidden layer (identity = deep linear network).",
    "width": "Hidden width n; the input dimension equals n as in the paper.",
    "dataset_size": "Number of training examples N. Blank = the paper's default (the number of parameters, "
                    "or N = n for the linear network).",
    "batch_size": "Minibatch size (same draw for every pixel). Blank = full batch.",
    "steps": "Gradient-descent steps per network (the paper uses 500).",
    "phase_space": "Which two hyperparameters the axes are: both layers' learning rates, or a weight offset "
                   "against one shared learning rate.",
    "seed": "Seed for the data and initial weights (shared by every pixel).",
    "dtype": "Arithmetic precision. float32 is faster; the page switches to float64 by itself when a view is "
             "too narrow for float32.",
    "offset_every_step": "Add the offset to W0 before every step (the authors' code) instead of only at "
                         "initialisation.",
}
AXIS_SHORT = {"lr_vs_lr": ("lr₀", "lr₁"), "offset_vs_lr": ("offset", "lr")}
TAB_DIM, TAB_VIDEO, TAB_PATH = "Fractal dimension", "Zoom video", "Zoom path"


# ------------------------------------------------------------------------------------------------ state
# ss["tx"] holds the explorer state: preset, the base spec's fields (ranges = path[0]), the zoom path and the
# current level, the click mode and zoom factor, the inspected pixel. It round-trips through the URL
# (ui.grid_view_query / ui.parse_grid_view_query); job state lives on disk (jobs), never here.


def _spec_fields(spec: tr.GridSpec) -> dict:
    return spec.to_dict()


def _view_of(fields: dict) -> ui.View:
    return (float(fields["x_range"][0]), float(fields["x_range"][1]),
            float(fields["y_range"][0]), float(fields["y_range"][1]))


def _fresh_state(preset: str, spec: tr.GridSpec | None = None, path=None, level=0, factor=2.0, mode="zoom",
                 pixel=None, autorun=False) -> dict:
    spec = spec or tr.PRESETS[preset].spec
    fields = _spec_fields(spec)
    path = [tuple(v) for v in (path or [_view_of(fields)])]
    return {"preset": preset, "fields": fields, "path": path, "level": int(level), "factor": float(factor),
            "mode": mode, "pixel": pixel, "autorun": autorun, "rev": ss.get("tx", {}).get("rev", 0) + 1,
            "notice": None}


def _field_widget_value(name: str, value):
    if name in ("dataset_size", "batch_size"):
        return "" if value is None else str(value)
    return value


def _sync_widgets(state: dict) -> None:
    """Put the state's values into the widgets' session keys (widgets never get a ``value=`` of their own)."""
    ss["tx_preset"] = state["preset"]
    res = tuple(state["fields"]["resolution"])
    ss["tx_res"] = res
    ss["tx_factor"] = state["factor"]
    ss["tx_mode"] = state["mode"]
    for name, value in state["fields"].items():
        if name not in OWN_CONTROLS:
            ss[f"tx_f_{name}"] = _field_widget_value(name, value)
    for k, v in zip(("x0", "x1", "y0", "y1"), state["path"][0]):
        ss[f"tx_f_{k}"] = float(v)
    ss.pop("tx_adv_error", None)


def _load_from_url(params: dict) -> bool:
    parsed = ui.parse_grid_view_query(params)
    if parsed is None:
        return False
    state = _fresh_state(parsed["preset"], parsed["spec"], parsed["path"], parsed["level"], parsed["factor"],
                         parsed["mode"], parsed["pixel"], autorun=True)
    if parsed["errors"]:
        state["notice"] = ("warning", "Some link parameters were ignored: " + "; ".join(parsed["errors"]))
    ss["tx"] = state
    _sync_widgets(state)
    return True


def _current_params() -> dict:
    return {k: st.query_params[k] for k in st.query_params.keys()}


_params = _current_params()
if "tx" not in ss or (_params and _params != ss.get("tx_url") and ui.parse_grid_view_query(_params)):
    # First visit of this session, or a link opened into a live session (e.g. "re-open" on the Runs page).
    if not _load_from_url(_params):
        ss["tx"] = _fresh_state(DEFAULT_PRESET)
        _sync_widgets(ss["tx"])
state = ss["tx"]
# Streamlit forgets the state of widgets a run did not draw (e.g. while the user was on another page): give
# any forgotten widget its value from the explorer state again, so widgets and state never disagree.
for _wkey, _value in (("tx_preset", state["preset"]), ("tx_res", tuple(state["fields"]["resolution"])),
                      ("tx_factor", state["factor"]), ("tx_mode", state["mode"])):
    if _wkey not in ss:
        ss[_wkey] = _value


def _view() -> ui.View:
    return tuple(state["path"][state["level"]])


def _base_spec() -> tr.GridSpec:
    return tr.GridSpec.from_dict(state["fields"])


def _view_spec(view: ui.View | None = None) -> tuple[tr.GridSpec, bool]:
    """The spec of a view, and whether float32 was raised to float64 because it cannot resolve the view."""
    view = view or _view()
    spec = dataclasses.replace(_base_spec(), x_range=(view[0], view[1]), y_range=(view[2], view[3]))
    if spec.dtype == "float32" and not tr.float32_resolves(spec):
        return dataclasses.replace(spec, dtype="float64"), True
    return spec, False


def _coarse_spec(spec: tr.GridSpec) -> tr.GridSpec | None:
    nx, ny = spec.resolution
    if max(nx, ny) <= COARSE:
        return None
    scale = COARSE / max(nx, ny)
    return dataclasses.replace(spec, resolution=(max(2, round(nx * scale)), max(2, round(ny * scale))))


def _key(spec) -> str:
    return default_store().key("grid", spec)


# ------------------------------------------------------------------------------------------------ callbacks


def _go_to(view: ui.View) -> None:
    """Push a new view after the current level (dropping any forward history) and compute it.

    A view the engine cannot compute (narrower than float64 resolves at this resolution, or beyond the axis
    limits) is refused with the spec's own message, and the map stays where it was.
    """
    view = tuple(float(v) for v in view)
    try:
        _view_spec(view)
    except ValueError as exc:
        state["notice"] = ("warning", f"Cannot zoom there — {exc}")
        state["rev"] += 1
        return
    state["path"] = state["path"][: state["level"] + 1] + [view]
    state["level"] += 1
    state["autorun"] = True
    state["rev"] += 1
    state["notice"] = None


def _on_map_select(chart_key: str) -> None:
    event = ss.get(chart_key)
    selection = getattr(event, "selection", None) or (event or {}).get("selection") or {}
    boxes = selection.get("box") or []
    points = selection.get("points") or []
    if boxes:
        box = boxes[0]
        try:
            _go_to(ui.box_view(box["x"], box["y"]))
        except ValueError as exc:
            state["notice"] = ("warning", str(exc))
            state["rev"] += 1
        return
    if not points:
        return
    x, y = float(points[0]["x"]), float(points[0]["y"])
    if state["mode"] == "inspect":
        state["pixel"] = (x, y)  # snapped to the nearest pixel of the map when drawn
        state["rev"] += 1
        return
    _go_to(ui.zoom_view(_view(), x, y, state["factor"]))


def _on_back() -> None:
    state["level"] = max(0, state["level"] - 1)
    state["rev"] += 1


def _on_forward() -> None:
    state["level"] = min(len(state["path"]) - 1, state["level"] + 1)
    state["rev"] += 1


def _on_reset() -> None:
    state["level"] = 0
    state["rev"] += 1


def _on_level(level: int) -> None:
    state["level"] = level
    state["rev"] += 1


def _on_zoom_out() -> None:
    cx, cy = ui.view_center(_view())
    _go_to(ui.zoom_view(_view(), cx, cy, 1.0 / state["factor"]))


def _on_preset() -> None:
    name = ss["tx_preset"]
    new = _fresh_state(name, autorun=state["autorun"])
    new["mode"], new["factor"] = state["mode"], state["factor"]
    ss["tx"] = new
    _sync_widgets(new)


def _on_resolution() -> None:
    old = state["fields"]["resolution"]
    state["fields"]["resolution"] = [int(v) for v in ss["tx_res"]]
    state["rev"] += 1
    try:
        _view_spec()
    except ValueError as exc:  # a deep view may be too narrow for more pixels: keep the old resolution
        state["fields"]["resolution"] = old
        ss["tx_res"] = tuple(old)
        state["notice"] = ("warning", f"Resolution not changed — {exc}")


def _on_factor() -> None:
    state["factor"] = float(ss["tx_factor"])


def _on_mode() -> None:
    state["mode"] = ss["tx_mode"] or "zoom"
    state["rev"] += 1


def _on_compute() -> None:
    state["autorun"] = True
    ss["tx_force"] = True


def _parse_optional_int(name: str, text: str):
    text = str(text).strip()
    if text == "" or text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}: expected a whole number or blank for the default, got {text!r}") from None


def _on_apply_advanced() -> None:
    """Build a GridSpec from the advanced panel; on a ValueError keep everything and show the message."""
    fields = dict(state["fields"])
    try:
        for name in fields:
            if name in OWN_CONTROLS:
                continue
            value = ss.get(f"tx_f_{name}")
            if name in ("dataset_size", "batch_size"):
                value = _parse_optional_int(name, value)
            fields[name] = value
        x0, x1 = float(ss["tx_f_x0"]), float(ss["tx_f_x1"])
        y0, y1 = float(ss["tx_f_y0"]), float(ss["tx_f_y1"])
        fields["x_range"], fields["y_range"] = [x0, x1], [y0, y1]
        spec = tr.GridSpec.from_dict(fields)
    except (ValueError, TypeError) as exc:
        ss["tx_adv_error"] = str(exc)
        return
    ss.pop("tx_adv_error", None)
    new_fields = _spec_fields(spec)
    root = _view_of(new_fields)
    state["fields"] = new_fields
    if root != tuple(state["path"][0]):
        state["path"], state["level"] = [root], 0
    state["rev"] += 1
    _sync_widgets(state)


# ------------------------------------------------------------------------------------------------ loading results


@st.cache_data(max_entries=64, show_spinner=False)
def _load_result(result_dir: str) -> dict:
    """The arrays and small files of a finished grid (result folders never change once written)."""
    from pathlib import Path

    d = Path(result_dir)
    out = {"measure": np.load(d / "measure.npy"), "converged": np.load(d / "converged.npy"),
           "spec_json": (d / "spec.json").read_text(), "png": (d / "image.png").read_bytes()}
    dim_path = d / "dimension.json"
    out["dimension"] = json.loads(dim_path.read_text()) if dim_path.exists() else None
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def _figure_payload(result_dir: str, phase_space: str) -> tuple:
    """Colours and hover texts of a result (the slow part of drawing a 256² map, so cached)."""
    r = _load_result(result_dir)
    m, conv = r["measure"], r["converged"]
    ny, nx = m.shape
    spec = json.loads(r["spec_json"])
    x0, x1 = spec["x_range"]
    y0, y1 = spec["y_range"]
    xs, ys = np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)
    dx = ui.coordinate_decimals(x1 - x0, max(nx, 10))
    dy = ui.coordinate_decimals(y1 - y0, max(ny, 10))
    sx, sy = AXIS_SHORT.get(phase_space, ("x", "y"))
    xt = [f"{sx} = 10^{ui.format_coordinate(v, dx)} = {10 ** v:.5g}" for v in xs]
    yt = [f"{sy} = 10^{ui.format_coordinate(v, dy)} = {10 ** v:.5g}" for v in ys]
    verdict = np.where(conv, "✓ converged", "✗ diverged")
    hover = np.empty((ny, nx), dtype=object)
    for i in range(ny):
        for j in range(nx):
            hover[i, j] = f"{xt[j]}<br>{yt[i]}<br>{verdict[i, j]} (measure {m[i, j]:.4g})"
    return render.equalized_values(m), hover


def _legend_colors() -> tuple[str, str]:
    rgb = render.colorize(np.array([-0.62, 0.62]))
    return tuple(f"rgb({r},{g},{b})" for r, g, b in rgb)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ page: header

st.title("Trainability Explorer")
st.markdown(
    "Each pixel is **one small neural network trained from scratch** with the two hyperparameters on the axes "
    "(log₁₀ scale). Blue-green pixels **converged**, red-orange ones **diverged**; colours are darkest next "
    "to the boundary, where training is slowest to decide. Sohl-Dickstein (2024) found this boundary is "
    "**fractal**: **click anywhere on the map to zoom in** (each level is recomputed, not enlarged), or drag a "
    "box with the toolbar's *box select*. Switch the click mode to *Inspect a pixel* to replay one network's "
    "training."
)
if state.get("notice"):  # one-shot: a message about the last action, shown once
    kind, text = state["notice"]
    state["notice"] = None
    getattr(st, kind)(text)

# ------------------------------------------------------------------------------------------------ sidebar: setup

with st.sidebar:
    st.header("Experiment")
    st.selectbox("Preset (the paper's experiments)", list(tr.PRESETS), key="tx_preset",
                 format_func=lambda n: tr.PRESETS[n].title, on_change=_on_preset)
    st.caption(tr.PRESETS[state["preset"]].description)
    res_options = [(r, r) for r in RESOLUTIONS]
    if tuple(state["fields"]["resolution"]) not in res_options:
        res_options.append(tuple(state["fields"]["resolution"]))
    st.selectbox("Resolution (pixels per side)", res_options, key="tx_res",
                 format_func=lambda r: f"{r[0]} × {r[1]}", on_change=_on_resolution,
                 help="Networks trained per view = width × height. A 32 × 32 preview is computed first.")

    with st.expander("Advanced: every grid setting"):
        with st.form("tx_adv_form", border=False):
            hints = typing.get_type_hints(tr.GridSpec)
            for f in dataclasses.fields(tr.GridSpec):
                name = f.name
                if name in OWN_CONTROLS:
                    continue
                wkey = f"tx_f_{name}"
                if wkey not in ss:
                    ss[wkey] = _field_widget_value(name, state["fields"].get(name))
                label = name.replace("_", " ")
                help_text = FIELD_HELP.get(name)
                hint = hints.get(name)
                # choices come from the engine's registries, titles included
                choices = {"activation": {k: a.title for k, a in tr.ACTIVATIONS.items()},
                           "phase_space": {k: p.title for k, p in tr.PHASE_SPACES.items()},
                           "dtype": {k: k for k in tr.DTYPES}}.get(name)
                if choices is not None:
                    st.selectbox(label, list(choices), key=wkey, help=help_text,
                                 format_func=lambda k, c=choices: c.get(k, str(k)))
                elif hint is bool:
                    st.checkbox(label, key=wkey, help=help_text)
                elif hint is int:
                    st.number_input(label, key=wkey, step=1, help=help_text)
                elif hint is float:
                    st.number_input(label, key=wkey, format="%.6g", help=help_text)
                else:
                    if not isinstance(ss[wkey], str):
                        ss[wkey] = "" if ss[wkey] is None else str(ss[wkey])
                    st.text_input(label, key=wkey, help=help_text)
            root = state["path"][0]
            st.markdown("**Full range** (log₁₀; the view that *reset* returns to)")
            c1, c2 = st.columns(2)
            for k, v in zip(("x0", "x1", "y0", "y1"), root):
                ss.setdefault(f"tx_f_{k}", float(v))
            c1.number_input("x from", key="tx_f_x0", format="%.6g")
            c2.number_input("x to", key="tx_f_x1", format="%.6g")
            c1.number_input("y from", key="tx_f_y0", format="%.6g")
            c2.number_input("y to", key="tx_f_y1", format="%.6g")
            st.form_submit_button("Apply settings", on_click=_on_apply_advanced, key="tx_apply")
        if ss.get("tx_adv_error"):
            st.error(f"Not applied — {ss['tx_adv_error']}", icon=":material/warning:")

    # Cost of the current view, before anything starts.
    view_spec, raised = _view_spec()
    coarse_spec = _coarse_spec(view_spec)
    steps_total = tr.network_steps(view_spec) + (tr.network_steps(coarse_spec) if coarse_spec else 0)
    seconds = tr.estimate_seconds(view_spec) + (tr.estimate_seconds(coarse_spec) if coarse_spec else 0.0)
    st.divider()
    st.markdown(f"**Cost of this view:** {steps_total / 1e6:.3g} M network-steps · about "
                f"**{ui.format_duration(seconds)}** on this machine")
    st.button("Compute this view", type="primary", key="tx_compute", on_click=_on_compute,
              width="stretch", icon=":material/play_arrow:")

# ------------------------------------------------------------------------------------------------ jobs of this view

fine_id = _key(view_spec)
coarse_id = _key(coarse_spec) if coarse_spec else None
fine_status = runs.status(fine_id)
coarse_status = runs.status(coarse_id) if coarse_id else None
force = ss.pop("tx_force", False)
if state["autorun"]:
    fine_done = fine_status is not None and fine_status.state == "done"
    if coarse_spec is not None and not fine_done and (coarse_status is None or force and coarse_status.terminal
                                                      and coarse_status.state != "done"):
        coarse_id = runs.submit("grid", coarse_spec)
        coarse_status = runs.status(coarse_id)
    # The full resolution waits for the preview: on 2 cores the two would otherwise compete and the preview
    # (the "first picture within seconds") would arrive late. The progress fragment reruns the page when the
    # preview finishes, which submits the full view. A cancelled preview starts nothing until Compute is pressed.
    preview_pending = coarse_status is not None and coarse_status.state != "done"
    if (fine_status is None and (force or not preview_pending)) or (
            force and fine_status is not None and fine_status.state in ("failed", "cancelled")):
        fine_id = runs.submit("grid", view_spec)
        fine_status = runs.status(fine_id)

shown_id = None
if fine_status is not None and fine_status.state == "done":
    shown_id = fine_id
elif coarse_status is not None and coarse_status.state == "done":
    shown_id = coarse_id
shown = None
if shown_id is not None:
    rd = runs.result_dir(shown_id)
    if rd is not None:
        shown = _load_result(str(rd))
        shown["dir"] = str(rd)
shown_spec = json.loads(shown["spec_json"]) if shown else None

# ------------------------------------------------------------------------------------------------ navigation row

x_title, y_title = tr.PHASE_SPACES[view_spec.phase_space].x_label, tr.PHASE_SPACES[view_spec.phase_space].y_label
with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
    st.segmented_control("Click on the map to", list(MODES), key="tx_mode", format_func=MODES.get,
                         on_change=_on_mode, required=True)
    st.selectbox("Zoom factor per click", FACTORS, key="tx_factor", format_func=lambda f: f"× {f:g}",
                 on_change=_on_factor, width=160)
    st.button("◀ Back", key="tx_back", on_click=_on_back, disabled=state["level"] == 0,
              help="The previous view of the zoom path")
    st.button("Forward ▶", key="tx_fwd", on_click=_on_forward,
              disabled=state["level"] >= len(state["path"]) - 1, help="Redo the zoom you went back from")
    st.button("Zoom out", key="tx_out", on_click=_on_zoom_out,
              help="A new view, the zoom factor wider, around the same centre")
    st.button("⟲ Reset", key="tx_reset", on_click=_on_reset, disabled=state["level"] == 0,
              help="Back to the full range (level 0)")

# breadcrumb: one button per level of the path (the last 12), the current one highlighted
root_w = state["path"][0][1] - state["path"][0][0]
with st.container(horizontal=True, vertical_alignment="center", gap="small"):
    st.markdown("**Zoom path**", width="content")
    first = max(0, len(state["path"]) - 12)
    if first:
        st.markdown("…", width="content")
    for lvl in range(first, len(state["path"])):
        v = state["path"][lvl]
        zoom = root_w / (v[1] - v[0])
        st.button(f"{lvl} · ×{zoom:.3g}" if lvl else "0 · full range", key=f"tx_crumb_{lvl}",
                  type="primary" if lvl == state["level"] else "secondary", on_click=_on_level, args=(lvl,),
                  help=f"x ∈ [{v[0]:.12g}, {v[1]:.12g}], y ∈ [{v[2]:.12g}, {v[3]:.12g}]")
cur = _view()
dx = ui.coordinate_decimals(cur[1] - cur[0], 1000)
dy = ui.coordinate_decimals(cur[3] - cur[2], 1000)
st.caption(
    f"Level {state['level']} — x ∈ [{ui.format_coordinate(cur[0], dx)}, {ui.format_coordinate(cur[1], dx)}], "
    f"y ∈ [{ui.format_coordinate(cur[2], dy)}, {ui.format_coordinate(cur[3], dy)}] · "
    f"zoom × {root_w / (cur[1] - cur[0]):.4g} · {view_spec.dtype}"
)
if raised:
    st.info("This view is narrower than float32 can resolve, so it is computed in **float64** "
            "(the setting asks for float32).", icon=":material/precision_manufacturing:")


# ------------------------------------------------------------------------------------------------ pixel inspection


@st.cache_data(max_entries=32, show_spinner=False)
def _pixel_curve(spec_json: str, x: float, y: float) -> np.ndarray:
    """One network's loss curve, recomputed (a single pixel trains in milliseconds, so no job is needed)."""
    return np.asarray(tr.pixel_loss_curve(tr.GridSpec.from_json(spec_json), x, y), dtype=np.float64)


def _snapped_pixel() -> dict | None:
    """The inspected point snapped to the nearest pixel of the shown map: its indices and exact coordinates
    (the grid's own ``x_values``/``y_values``, so the replayed curve is the one the grid measured)."""
    if state["pixel"] is None or shown is None:
        return None
    spec = tr.GridSpec.from_json(shown["spec_json"])
    px, py = state["pixel"]
    xs, ys = spec.x_values, spec.y_values
    hx = (xs[-1] - xs[0]) / max(1, len(xs) - 1) / 2
    hy = (ys[-1] - ys[0]) / max(1, len(ys) - 1) / 2
    if not (xs[0] - hx <= px <= xs[-1] + hx and ys[0] - hy <= py <= ys[-1] + hy):
        return None  # the inspected point is outside this view (the user zoomed or went back)
    j = int(np.argmin(np.abs(xs - px)))
    i = int(np.argmin(np.abs(ys - py)))
    return {"i": i, "j": j, "x": float(xs[j]), "y": float(ys[i])}


def _pixel_panel(pix: dict) -> None:
    i, j, xv, yv = pix["i"], pix["j"], pix["x"], pix["y"]
    m = shown["measure"]
    ny, nx = m.shape
    losses = _pixel_curve(shown["spec_json"], xv, yv)
    measure = float(tr.convergence_measure(losses))
    verdict = "✓ converged" if measure < 0 else "✗ diverged"
    grid_verdict = "converged" if bool(shown["converged"][i, j]) else "diverged"
    sx, sy = AXIS_SHORT.get(shown_spec["phase_space"], ("x", "y"))
    c = st.columns(2) + st.columns(2)
    c[0].metric(sx, f"{10 ** xv:.6g}", help=f"log₁₀ {sx} = {xv:.15g}")
    c[1].metric(sy, f"{10 ** yv:.6g}", help=f"log₁₀ {sy} = {yv:.15g}")
    c[2].metric("Verdict (replayed)", verdict)
    c[3].metric("Convergence measure", f"{measure:.5g}",
                help="−Σ normalised losses if converged, Σ 1/normalised loss if diverged (the paper's measure); "
                     "its sign is the verdict.")
    st.caption(f"Pixel column {j}, row {i} of the {nx} × {ny} map. The grid computed measure {m[i, j]:.5g} "
               f"({grid_verdict}) for this network; the curve below is recomputed from scratch.")
    finite = np.isfinite(losses)
    lfig = go.Figure(go.Scatter(x=np.arange(len(losses))[finite], y=losses[finite], mode="lines",
                                name="training loss",
                                line=dict(color=conv_color if measure < 0 else div_color, width=2)))
    lfig.update_yaxes(type="log", title="loss (MSE over the training set)")
    lfig.update_xaxes(title="gradient-descent step")
    lfig.update_layout(height=300, margin=dict(l=60, r=20, t=10, b=50))
    st.plotly_chart(lfig, key="tx_pixel_plot", width="stretch")
    if not finite.all():
        st.caption(f"The loss became non-finite at step {int(np.argmin(finite))}: the network blew up, and every "
                   "later step counts as the cap (10⁶) in the measure.")


inspected = _snapped_pixel() if state["mode"] == "inspect" else None

# ------------------------------------------------------------------------------------------------ the map

map_col, info_col = st.columns([3, 1.15])
conv_color, div_color = _legend_colors()

with map_col:
    if shown is not None:
        z, hover = _figure_payload(shown["dir"], view_spec.phase_space)
        sv = (shown_spec["x_range"][0], shown_spec["x_range"][1], shown_spec["y_range"][0], shown_spec["y_range"][1])
        fig = ui.heatmap_figure(
            z, sv, colorscale=render.SPECTRAL_COLORSCALE, zmin=-1, zmax=1, hover_text=hover,
            x_title=x_title, y_title=y_title,
            legend=[("converged (trainable)", conv_color), ("diverged", div_color)],
            marker=(inspected["x"], inspected["y"]) if inspected else None,
            height=640,
        )
        chart_key = f"tx_map_{state['rev']}"
        st.plotly_chart(fig, key=chart_key, on_select=lambda: _on_map_select(chart_key),
                        selection_mode=("points", "box"), width="stretch",
                        config={"displaylogo": False, "scrollZoom": False,
                                "modeBarButtonsToRemove": ["lasso2d", "autoScale2d"]})
        if shown_id != fine_id:
            st.caption(f"Preview at {shown['measure'].shape[1]} × {shown['measure'].shape[0]}; refining to "
                       f"{view_spec.resolution[0]} × {view_spec.resolution[1]}…")
        if state["mode"] == "inspect":
            with st.container(border=True):
                st.markdown("**Pixel inspection**")
                if inspected is None:
                    st.caption("Click a pixel of the map: its network's training is replayed here.")
                else:
                    _pixel_panel(inspected)
    else:  # a placeholder as tall as the map, so the page does not jump while a view computes
        with st.container(height=640, border=True):
            states = {s.state for s in (fine_status, coarse_status) if s is not None}
            if not state["autorun"] and not states:
                st.info("Press **Compute this view** in the sidebar to train the grid of networks for this "
                        "preset. A coarse preview appears within seconds, then the full resolution.",
                        icon=":material/arrow_back:")
            elif states and not states & set(ui.LIVE_STATES):
                st.warning("This view was not computed (the job failed or was cancelled: see the right-hand "
                           "panel). Press **Compute this view** to try again.", icon=":material/error:")
            else:
                st.info("Computing this view… the preview appears as soon as it is ready (progress on the "
                        "right).", icon=":material/hourglass_top:")

with info_col:
    if shown is not None:
        conv = shown["converged"]
        st.metric("Converged fraction of this view", f"{100 * conv.mean():.1f} %",
                  help="Share of the pixels (networks) in this view whose training converged.")

    fine_done = fine_status is not None and fine_status.state == "done"
    live = [(s, t) for s, t in ((None if fine_done else coarse_status, "Preview"),
                                (fine_status, "Full resolution")) if s is not None]
    is_live = any(s.state in ui.LIVE_STATES for s, _ in live)
    before = {s.id: s.state for s, _ in live}

    def _cancel_view(_job_id: str) -> None:
        for s, _ in live:
            runs.cancel(s.id)

    @st.fragment(run_every=0.5 if is_live else None)
    def _progress() -> None:
        changed = False
        for s, title in live:
            now = ui.job_progress_panel(s.id, key=f"tx_job_{title}", title=title, on_cancel=_cancel_view)
            if now is not None and now.state != before.get(s.id):
                changed = True
        if is_live and changed:
            st.rerun(scope="app")

    if live:
        _progress()

    if shown is not None:
        st.markdown("**Downloads**")
        stem = f"trainability-{state['preset']}-L{state['level']}-{shown['measure'].shape[1]}px"
        npy = io.BytesIO()
        np.save(npy, shown["measure"])
        ui.download_row({f"{stem}.png": (shown["png"], "image/png"),
                         f"{stem}-measure.npy": (npy.getvalue(), "application/octet-stream"),
                         f"{stem}-spec.json": (shown["spec_json"].encode(), "application/json")},
                        key="tx_dl", columns=1,
                        labels={f"{stem}.png": "Image (PNG, full resolution)",
                                f"{stem}-measure.npy": "Raw measure (.npy)",
                                f"{stem}-spec.json": "Spec (.json)"})
    st.markdown("**Share**")
    share_query = ui.grid_view_query(state["fields"], preset=state["preset"], path=state["path"],
                                     level=state["level"], factor=state["factor"], mode=state["mode"],
                                     pixel=tuple(state["pixel"]) if state["pixel"] else None)
    ui.copy_link(share_query)

# ------------------------------------------------------------------------------------------------ panels

tabs = st.tabs([TAB_DIM, TAB_VIDEO, TAB_PATH])


def _estimate_of(result: dict) -> fd.DimensionEstimate:
    if result.get("dimension"):
        return fd.DimensionEstimate.from_dict(result["dimension"])
    return fd.box_counting_dimension(result["measure"])


def _fmt_dim(value: float) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"


with tabs[0]:
    if shown is None:
        st.info("The dimension of the boundary is measured once the map is computed.")
    else:
        est = _estimate_of(shown)
        visited = []
        for lvl, v in enumerate(state["path"]):
            vid = _key(_view_spec(v)[0])
            rd = runs.result_dir(vid)
            if rd is not None:
                visited.append((lvl, v, _estimate_of(_load_result(str(rd)))))
        combined = fd.combined_dimension([e for _, _, e in visited]) if visited else None
        published = fd.published_dimension(state["preset"])
        c = st.columns(4)
        def _ci(interval) -> str | None:
            lo, hi = interval
            if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
                return None
            return f"95 % interval {lo:.3f} – {hi:.3f}"

        c[0].metric("This view", _fmt_dim(est.dimension), delta=_ci(est.interval), delta_color="off",
                    delta_arrow="off",
                    help="Least-squares slope of log N against log box size, over the sizes where counts are "
                         "neither saturated nor too few.")
        c[1].metric("Paper's estimator, this view", _fmt_dim(est.paper_dimension),
                    help="Median local slope over 10 log-spaced box sizes from 10 px (porespy's boxcount), as "
                         "the paper computed it.")
        if combined is not None:
            c[2].metric(f"Combined, {len(visited)} level(s) visited", _fmt_dim(combined.dimension),
                        delta=_ci(combined.interval), delta_color="off", delta_arrow="off",
                        help="One slope fitted to every visited level's box counts. The paper's estimator pooled "
                             f"over the same levels: {_fmt_dim(combined.paper_dimension)}")
        if published:
            c[3].metric(f"Published ({published['experiment']})", f"{published['value']:.2f}")
        if est.reason:
            st.caption(f"Note: {est.reason}")
        if shown_id != fine_id:
            st.caption("Measured on the coarse preview; it updates when the full resolution arrives.")
        if len(est.sizes):
            dfig = go.Figure()
            fit = est.in_fit
            dfig.add_trace(go.Scatter(x=est.sizes[~fit], y=est.counts[~fit], mode="markers", name="box counts",
                                      marker=dict(color="#999", size=8)))
            dfig.add_trace(go.Scatter(x=est.sizes[fit], y=est.counts[fit], mode="markers", name="counts in the fit",
                                      marker=dict(color="#3288bd", size=9)))
            if math.isfinite(est.dimension):
                fc = est.fitted_counts()
                dfig.add_trace(go.Scatter(x=est.sizes[fit], y=fc[fit], mode="lines",
                                          name=f"fit: slope −{est.dimension:.3f}", line=dict(color="#d53e4f")))
            if len(est.paper_sizes):
                dfig.add_trace(go.Scatter(x=est.paper_sizes, y=est.paper_counts, mode="markers",
                                          name="paper's counts", marker=dict(symbol="x", color="#5e4fa2", size=8)))
            dfig.update_xaxes(type="log", title="box size s (pixels)")
            dfig.update_yaxes(type="log", title="boxes N(s) touching the boundary")
            dfig.update_layout(height=380, margin=dict(l=60, r=20, t=30, b=50),
                               legend=dict(orientation="h", y=1.08, x=0))
            st.plotly_chart(dfig, key="tx_dim_plot", width="stretch")
        if published:
            st.caption(published["note"])
        rows = pd.DataFrame(est.table())
        levels = pd.DataFrame([
            {"level": lvl, "x0": v[0], "x1": v[1], "y0": v[2], "y1": v[3], "dimension": e.dimension,
             "interval_low": e.interval[0], "interval_high": e.interval[1], "paper_dimension": e.paper_dimension}
            for lvl, v, e in visited
        ])
        ui.download_row({
            "box_counts.csv": (rows.to_csv(index=False).encode(), "text/csv"),
            "dimension_by_level.csv": (levels.to_csv(index=False).encode(), "text/csv"),
        }, key="tx_dl_dim", labels={"box_counts.csv": "⬇ Box counts (CSV)",
                                    "dimension_by_level.csv": "⬇ Estimates per level (CSV)"})


with tabs[1]:
    from engine import video as tv

    st.caption("A zoom video recomputes one keyframe per ×2 zoom level and glides smoothly between them (as "
               "the authors' video did), so it costs a few grids, not one per frame. It runs as a job: you can "
               "keep exploring meanwhile.")
    vc = st.columns(5)
    route = vc[0].radio("Zoom", ["full range → this view", "along the visited path"], key="tx_v_route")
    vres = vc[1].selectbox("Keyframe resolution", [32, 64, 96, 128, 192, 256], index=3, key="tx_v_res",
                           format_func=lambda r: f"{r} × {r}")
    vfpl = vc[2].slider("Frames per ×2 level", 2, 48, 12, key="tx_v_fpl")
    vfps = vc[3].slider("Frames per second", 4, 30, 12, key="tx_v_fps")
    vout = vc[4].checkbox("Zoom out instead of in", key="tx_v_out")
    video_spec, video_error = None, None
    try:
        kwargs = dict(grid=view_spec, resolution=(vres, vres), frames_per_level=vfpl, fps=vfps, zoom_out=vout)
        if route.startswith("along") and state["level"] > 0:
            kwargs["path"] = tuple(tuple(v) for v in state["path"][: state["level"] + 1])
        else:
            root = state["path"][0]
            kwargs["full_x_range"], kwargs["full_y_range"] = (root[0], root[1]), (root[2], root[3])
        video_spec = tv.VideoSpec(**kwargs)
    except ValueError as exc:
        video_error = str(exc)
    if video_error:
        st.info(f"No video for this view yet — {video_error}", icon=":material/movie:")
    else:
        n_key = len(video_spec.keyframes())
        vsteps = sum(tr.network_steps(video_spec.keyframe_grid(v)) for v in video_spec.keyframes())
        vsecs = sum(tr.estimate_seconds(video_spec.keyframe_grid(v)) for v in video_spec.keyframes())
        st.markdown(f"{n_key} keyframes, {video_spec.n_frames} frames of {video_spec.frame_size[0]} × "
                    f"{video_spec.frame_size[1]} px · {vsteps / 1e6:.3g} M network-steps · about "
                    f"**{ui.format_duration(vsecs)}**")
        video_id = default_store().key("zoom_video", video_spec)
        if st.button("Render zoom video", key="tx_v_go", icon=":material/movie:"):
            video_id = runs.submit("zoom_video", video_spec)
        vstatus = runs.status(video_id)
        if vstatus is not None:
            ui.live_job_fragment(video_id, key="tx_v_job", title="Zoom video")
            vdir = runs.result_dir(video_id)
            if vdir is not None:
                mp4 = (vdir / "video.mp4").read_bytes() if (vdir / "video.mp4").exists() else None
                gif = (vdir / "video.gif").read_bytes() if (vdir / "video.gif").exists() else None
                if mp4:
                    st.video(mp4, format="video/mp4", loop=True)
                files = {}
                if mp4:
                    files[f"zoom-{state['preset']}.mp4"] = (mp4, "video/mp4")
                if gif:
                    files[f"zoom-{state['preset']}.gif"] = (gif, "image/gif")
                ui.download_row(files, key="tx_v_dl")

with tabs[2]:
    st.caption("Every level you visited, from the full range (level 0). Click a level in the zoom path above "
               "the map to return to it; each level's result stays in the cache.")
    rows = []
    for lvl, v in enumerate(state["path"]):
        s = runs.status(_key(_view_spec(v)[0]))
        rows.append({"level": lvl, "current": "▶" if lvl == state["level"] else "",
                     "zoom": f"× {root_w / (v[1] - v[0]):.4g}", "x from": v[0], "x to": v[1],
                     "y from": v[2], "y to": v[3], "status": s.state if s else "not computed"})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={k: st.column_config.NumberColumn(format="%.12g")
                                for k in ("x from", "x to", "y from", "y to")})

# ------------------------------------------------------------------------------------------------ the URL
# Written last, so the link always describes what this run drew; remembered so the next run can tell a link
# the user opened (different from ours) from our own writing.
ui.write_query_params(share_query, clear_others=True)
ss["tx_url"] = dict(share_query)
