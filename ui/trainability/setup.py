"""The sidebar: which experiment, how many pixels, every other grid setting, and what the view will cost.

Settings are drawn from GridSpec's field declarations. The advanced panel is a form checked when applied, so a
value the spec refuses shows the spec's own message (and nothing changes) instead of being silently clamped.
"""

from __future__ import annotations

import streamlit as st

from engine.specs import FieldInfo, field_info, fields_of
from engine.trainability import ACTIVATIONS, PHASE_SPACES, PRESETS, GridSpec, network_steps
from engine.trainability.views import view_of
from ui.format import format_duration
from ui.spec_form import spec_input
from ui.trainability import compute, session
from ui.trainability.cluster import DASK

RESOLUTIONS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # the menu of square sizes
TITLES = {"activation": {k: a.title for k, a in ACTIVATIONS.items()},
          "phase_space": {k: p.title for k, p in PHASE_SPACES.items()}}


def sidebar(state: dict) -> None:
    """The whole sidebar: preset, resolution, advanced settings, the view's cost and the Compute button."""
    st.header("Experiment")
    st.selectbox("Preset (the paper's experiments)", list(PRESETS), key="tx_preset",
                 format_func=lambda n: PRESETS[n].title, on_change=_on_preset)
    st.caption(PRESETS[state["preset"]].description)
    res_options = [(r, r) for r in RESOLUTIONS]
    if tuple(state["fields"]["resolution"]) not in res_options:
        res_options.append(tuple(state["fields"]["resolution"]))
    st.selectbox("Resolution (pixels per side)", res_options, key="tx_res",
                 format_func=lambda r: f"{r[0]} × {r[1]}", on_change=_on_resolution,
                 help="Networks trained per view = width × height. The map appears coarse within seconds and "
                      "sharpens as the job goes on.")
    _advanced(state)
    spec, _ = session.view_spec(state)
    st.divider()
    most = "at most " if getattr(spec, "refine", "exact") != "exact" else ""  # refinement trains fewer pixels
    where = "on this machine"
    if st.session_state.get("tx_compute_on") == DASK:  # "Compute on" is drawn below; its value is known here
        where += " (it runs on the Dask cluster, whose speed is not estimated)"
    st.markdown(f"**Cost of this view:** {most}{network_steps(spec) / 1e6:.3g} M network-steps · about "
                f"**{format_duration(compute.estimate(spec))}** {where}")
    st.button("Compute this view", type="primary", key="tx_compute", on_click=compute.request_compute,
              width="stretch", icon=":material/play_arrow:")


def _field_widget(info: FieldInfo, key: str) -> None:
    if info.meta.choices is not None or info.kind is bool:
        titles = TITLES.get(info.name, {})
        spec_input(GridSpec, info.name, key=key, **({"format_func": lambda k: titles.get(k, str(k))}
                                                    if titles else {}))
        return
    help_text = f"{info.meta.help} Allowed: {info.allowed()}."
    if info.optional:  # blank = none (the paper's default): a text box, so "blank" is something one can type
        st.text_input(info.label, key=key, help=help_text)
    else:
        st.number_input(info.label, key=key, step=1 if info.kind is int else None,
                        format=None if info.kind is int else "%.6g", help=help_text)


def _advanced(state: dict) -> None:
    ss = st.session_state
    with st.expander("Advanced: every grid setting"):
        with st.form("tx_adv_form", border=False):
            for info in fields_of(GridSpec):
                if not info.meta.ui:
                    continue
                key = f"tx_f_{info.name}"
                if key not in ss:
                    ss[key] = session.widget_value(info.name, session.field_value(state, info.name))
                _field_widget(info, key)
            st.markdown("**Full range** (log₁₀; the view that *reset* returns to)")
            c1, c2 = st.columns(2)
            for k, v in zip(session.RANGE_KEYS, state["path"][0]):
                ss.setdefault(f"tx_f_{k}", float(v))
            for col, k, label, name in ((c1, "x0", "x from", "x_range"), (c2, "x1", "x to", "x_range"),
                                        (c1, "y0", "y from", "y_range"), (c2, "y1", "y to", "y_range")):
                info = field_info(GridSpec, name)
                col.number_input(label, key=f"tx_f_{k}", format="%.6g",
                                 help=f"{info.meta.help} Allowed: {info.allowed()}.")
            st.form_submit_button("Apply settings", on_click=_on_apply, key="tx_apply")
        if ss.get("tx_adv_error"):
            st.error(f"Not applied — {ss['tx_adv_error']}", icon=":material/warning:")


def _optional_int(info: FieldInfo, text) -> int | None:
    text = "" if text is None else str(text).strip()
    if text == "" or text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{info.name}: must be {info.allowed()}; leave it blank for the default, got {text!r}") \
            from None


def _on_apply() -> None:
    """Build a GridSpec from the advanced panel; on a ValueError keep everything and show the message."""
    ss, state = st.session_state, session.get()
    fields = dict(state["fields"])
    try:
        for info in fields_of(GridSpec):
            if not info.meta.ui:
                continue
            value = ss.get(f"tx_f_{info.name}")
            fields[info.name] = _optional_int(info, value) if info.optional else value
        fields["x_range"] = [float(ss["tx_f_x0"]), float(ss["tx_f_x1"])]
        fields["y_range"] = [float(ss["tx_f_y0"]), float(ss["tx_f_y1"])]
        spec = GridSpec.from_dict(fields)
    except (ValueError, TypeError) as exc:
        ss["tx_adv_error"] = str(exc)
        return
    ss.pop("tx_adv_error", None)
    state["fields"] = spec.to_dict()
    root = view_of(spec)
    if root != tuple(state["path"][0]):
        state["path"], state["level"] = [root], 0
    state["rev"] += 1
    session.sync_widgets(state)


def _on_preset() -> None:
    old = session.get()
    new = session.fresh(st.session_state["tx_preset"], autorun=old["autorun"])
    new["mode"], new["factor"] = old["mode"], old["factor"]
    st.session_state[session.KEY] = new
    session.sync_widgets(new)


def _on_resolution() -> None:
    """Another resolution: the view's jobs at the old one are no longer wanted, so those still running stop (the
    new view starts on its own only below the cost limit, see compute.view_jobs)."""
    state = session.get()
    old, old_ids = state["fields"]["resolution"], compute.view_job_ids(state)
    state["fields"]["resolution"] = [int(v) for v in st.session_state["tx_res"]]
    state["rev"] += 1
    try:
        session.view_spec(state)
    except ValueError as exc:  # a deep view may be too narrow for more pixels: keep the old resolution
        state["fields"]["resolution"] = old
        st.session_state["tx_res"] = tuple(old)
        state["notice"] = ("warning", f"Resolution not changed — {exc}")
        return
    compute.cancel_replaced(old_ids, state)

