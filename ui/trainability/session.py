"""The explorer's state in the session: preset, the grid's fields (ranges = the zoom path's first view), zoom path
and level, click mode, zoom factor and inspected pixel. It is loaded from the link, changed only by callbacks,
and written back to the link at the end of every run; jobs live on disk (``runs``), never here.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.specs import field_info, fields_of
from engine.trainability.presets import DEFAULT_PRESET, PRESETS
from engine.trainability.spec import GridSpec
from engine.trainability.views import View, view_of
from engine.trainability.views import view_spec as _view_spec
from ui.trainability.link import parse_grid_view_query

KEY = "tx"  # ss["tx"]: the explorer state; widget keys start with "tx_"
OWN_CONTROLS = ("x_range", "y_range", "resolution")  # fields with controls of their own, not the advanced form
RANGE_KEYS = ("x0", "x1", "y0", "y1")


def get() -> dict:
    return st.session_state[KEY]


def fresh(preset: str, spec: GridSpec | None = None, path=None, level: int = 0, factor: float = 2.0,
          mode: str = "zoom", pixel=None, autorun: bool = False) -> dict:
    """A new state on ``spec`` (default: the preset's), at ``path[level]``."""
    spec = spec or PRESETS[preset].spec
    path = [tuple(v) for v in (path or [view_of(spec)])]
    return {"preset": preset, "fields": spec.to_dict(), "path": path, "level": int(level), "factor": float(factor),
            "mode": mode, "pixel": pixel, "autorun": autorun,
            "rev": st.session_state.get(KEY, {}).get("rev", 0) + 1, "notice": None}


def widget_value(name: str, value: Any) -> Any:
    """A field's value as its advanced-form widget holds it (optional numbers are text: blank = none)."""
    if field_info(GridSpec, name).optional:
        return "" if value is None else str(value)
    return value


def field_value(state: dict, name: str) -> Any:
    """A grid field of the state; a field at its default may be absent (``omit_default``, e.g. ``refine``)."""
    fields = state["fields"]
    return fields[name] if name in fields else field_info(GridSpec, name).default


def sync_widgets(state: dict) -> None:
    """Put the state's values into the widgets' session keys (widgets never get a ``value=`` of their own)."""
    ss = st.session_state
    ss["tx_preset"] = state["preset"]
    ss["tx_res"] = tuple(state["fields"]["resolution"])
    ss["tx_factor"] = state["factor"]
    ss["tx_mode"] = state["mode"]
    for info in fields_of(GridSpec):
        if info.name not in OWN_CONTROLS:
            ss[f"tx_f_{info.name}"] = widget_value(info.name, field_value(state, info.name))
    for k, v in zip(RANGE_KEYS, state["path"][0]):
        ss[f"tx_f_{k}"] = float(v)
    ss.pop("tx_adv_error", None)


def _load_from_url(params: dict) -> bool:
    parsed = parse_grid_view_query(params)
    if parsed is None:
        return False
    # A link computes what it names (within the engine's cost limit, see compute.view_jobs); a link with refused
    # parameters shows the preset's view instead, so it waits for "Compute" rather than train what nobody asked.
    state = fresh(parsed["preset"], parsed["spec"], parsed["path"], parsed["level"], parsed["factor"],
                  parsed["mode"], parsed["pixel"], autorun=not parsed["errors"])
    if parsed["errors"]:
        state["notice"] = ("warning", "Some link parameters were ignored: " + "; ".join(parsed["errors"]))
    st.session_state[KEY] = state
    sync_widgets(state)
    return True


def load() -> dict:
    """The state for this run: from the link on a first visit or when a link was opened into a live session
    (e.g. "re-open" on the Runs page), else the session's own."""
    ss = st.session_state
    params = {k: st.query_params[k] for k in st.query_params.keys()}
    if KEY not in ss or (params and params != ss.get("tx_url") and parse_grid_view_query(params)):
        if not _load_from_url(params):
            ss[KEY] = fresh(DEFAULT_PRESET)
            sync_widgets(ss[KEY])
    state = ss[KEY]
    # Streamlit forgets the state of widgets a run did not draw (e.g. while the user was on another page):
    # give a forgotten widget its value from the state again, so widgets and state never disagree.
    for wkey, value in (("tx_preset", state["preset"]), ("tx_res", tuple(state["fields"]["resolution"])),
                        ("tx_factor", state["factor"]), ("tx_mode", state["mode"])):
        if wkey not in ss:
            ss[wkey] = value
    return state


def current_view(state: dict) -> View:
    return tuple(state["path"][state["level"]])


def base_spec(state: dict) -> GridSpec:
    """The grid the explorer set up (its ranges are the full range, ``path[0]``)."""
    return GridSpec.from_dict(state["fields"])


def view_spec(state: dict, view: View | None = None) -> tuple[GridSpec, bool]:
    """The spec that computes ``view`` (default: the current one), and whether float32 was raised to float64."""
    return _view_spec(base_spec(state), view if view is not None else current_view(state))


def map_key(state: dict) -> str:
    """The map chart's widget key: new at every level and every change of the view, so a new view starts with an
    empty selection and an event of a replaced chart can be told apart (``navigation.on_map_select``)."""
    return f"tx_map_{state['level']}_{state['rev']}"


def root_width(state: dict) -> float:
    return state["path"][0][1] - state["path"][0][0]


def show_notice(state: dict) -> None:
    """A one-shot message about the last action, shown once."""
    if state.get("notice"):
        kind, text = state["notice"]
        state["notice"] = None
        getattr(st, kind)(text)


def warn(state: dict, text: str) -> None:
    state["notice"] = ("warning", text)
    state["rev"] += 1
