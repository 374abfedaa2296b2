"""The Trainability Explorer's URL, so every view is a link that reopens exactly.

The grid's fields are written by ``ui.state.spec_query`` (generated from GridSpec's declarations) except the
ranges, which are the zoom path's views; then path, level, factor, mode and the inspected pixel. A plain
``spec_query(GridSpec, spec)`` link (how the Runs page reopens a grid or a video) opens too: without a path, its
view is reached from its preset's full range, so "back" and "reset" still lead out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from engine.specs import fields_of
from engine.trainability.presets import DEFAULT_PRESET, PRESETS, matching_preset
from engine.trainability.spec import GridSpec
from engine.trainability.views import View, view_of, with_view
from ui.downloads import copy_link
from ui.state import decode_query_value, encode_query_value, parse_spec_query, spec_query, write_query_params

EXPLORER_PAGE = "pages/1_Trainability_Explorer.py"
EXPLORER_URL_PATH = "Trainability_Explorer"
MODES = ("zoom", "box", "inspect")
_RANGES = ("x_range", "y_range")
_VIEW_KEYS = ("preset", "path", "level", "factor", "mode", "px")

__all__ = ["EXPLORER_PAGE", "EXPLORER_URL_PATH", "MODES", "explorer_query", "grid_view_link", "grid_view_query",
           "matching_preset", "parse_grid_view_query", "share_section", "write_url"]


def _view_of(spec_dict: Mapping[str, Any]) -> View:
    xr, yr = spec_dict["x_range"], spec_dict["y_range"]
    return (float(xr[0]), float(xr[1]), float(yr[0]), float(yr[1]))


def grid_view_query(spec_dict: Mapping[str, Any], *, preset: str | None = None,
                    path: Sequence[Sequence[float]] | None = None, level: int | None = None,
                    factor: float | None = None, mode: str | None = None,
                    pixel: tuple[float, float] | None = None) -> dict[str, str]:
    """The query parameters that open the explorer on ``spec_dict`` (a ``GridSpec.to_dict()``).

    ``path[0]`` is the full range (what "reset" returns to), ``path[level]`` the view shown. Without ``path`` the
    view is ``spec_dict``'s ranges, reached from the matching preset's full range when there is one. Every other
    field is written explicitly, so a link keeps its meaning even if a preset's defaults change.
    """
    spec_dict = dict(spec_dict)
    if preset is None:
        preset = matching_preset(spec_dict)
    if path is None:
        view = _view_of(spec_dict)
        path = [view]
        if preset is not None and view_of(PRESETS[preset].spec) != view:
            path = [view_of(PRESETS[preset].spec), view]
    path = [tuple(float(v) for v in p) for p in path]
    q: dict[str, str] = {"preset": preset} if preset is not None else {}
    q.update(spec_query(GridSpec, spec_dict, skip=_RANGES))
    q["path"] = encode_query_value(path)
    q["level"] = str(int(len(path) - 1 if level is None else level))
    if factor is not None:
        q["factor"] = encode_query_value(float(factor))
    if mode is not None:
        q["mode"] = mode
    if pixel is not None:
        q["px"] = encode_query_value(tuple(float(v) for v in pixel))
    return q


def grid_view_link(spec_dict: Mapping[str, Any], **kwargs: Any) -> str:
    """A relative URL (``/Trainability_Explorer?...``) that opens ``spec_dict``'s view in the explorer."""
    return f"/{EXPLORER_URL_PATH}?" + urlencode(grid_view_query(spec_dict, **kwargs), safe=",;")


def _parse_path(text: str, errors: list[str]) -> list[View]:
    try:
        rows = decode_query_value(text, [(0.0, 0.0, 0.0, 0.0)])
    except (TypeError, ValueError) as exc:
        errors.append(f"path: {exc}")
        return []
    path = [tuple(r) for r in (rows or []) if all(math.isfinite(v) for v in r)]
    if rows and len(path) != len(rows):
        errors.append("path: a view with non-finite coordinates was dropped")
    return path


def parse_grid_view_query(params: Mapping[str, str]) -> dict[str, Any] | None:
    """Inverse of :func:`grid_view_query` (and reader of plain ``spec_query`` links); ``None`` when ``params``
    hold no explorer state at all.

    Returns ``{"preset", "spec" (ranges = path[0]), "path", "level", "factor", "mode", "pixel", "errors"}``. A
    parameter that does not parse, or a spec that fails validation, leaves the preset's own spec and view with
    the message in ``errors``, so a hand-edited link never crashes the page.
    """
    params = dict(params)
    range_params = {info.param for info in fields_of(GridSpec) if info.name in _RANGES}
    known = {info.param for info in fields_of(GridSpec)} | set(_VIEW_KEYS)
    if not any(k in params for k in known):
        return None
    errors: list[str] = []
    preset = params.get("preset")
    if preset is not None and preset not in PRESETS:
        errors.append(f"preset: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        preset = None
    base = PRESETS[preset or DEFAULT_PRESET].spec.to_dict()
    fields, field_errors = parse_spec_query(GridSpec, params, base)
    if preset is None:
        preset = matching_preset(fields) or DEFAULT_PRESET
    path = _parse_path(params["path"], errors) if "path" in params else []
    if not path and any(p in params for p in range_params):
        view = _view_of(fields)
        root = view_of(PRESETS[preset].spec)
        path = [root, view] if matching_preset(fields) == preset and root != view else [view]
    if path:
        fields["x_range"], fields["y_range"] = (path[0][0], path[0][1]), (path[0][2], path[0][3])
    spec = PRESETS[preset].spec
    errors += field_errors
    if field_errors:
        path = []
    else:
        try:
            spec = GridSpec.from_dict(fields)
        except (TypeError, ValueError) as exc:
            errors.append(str(exc))
            path = []
    if not path:
        path = [view_of(spec)]
    for i, v in enumerate(path[1:], start=1):  # every view must be computable at this resolution
        try:
            with_view(spec, v)
        except ValueError as exc:
            errors.append(f"path: level {i} and deeper dropped ({exc})")
            path = path[:i]
            break
    level = len(path) - 1
    if "level" in params:
        try:
            level = int(params["level"])
        except ValueError:
            errors.append(f"level: expected an integer, got {params['level']!r}")
    level = min(max(level, 0), len(path) - 1)
    factor = 2.0
    if "factor" in params:
        try:
            factor = float(params["factor"])
            if not factor > 1:
                raise ValueError(f"must be > 1, got {factor}")
        except ValueError as exc:
            errors.append(f"factor: {exc}")
            factor = 2.0
    mode = params.get("mode", "zoom")
    if mode not in MODES:
        errors.append(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        mode = "zoom"
    pixel = None
    if "px" in params:
        try:
            pixel = decode_query_value(params["px"], (0.0, 0.0))
        except (TypeError, ValueError) as exc:
            errors.append(f"px: {exc}")
    return {"preset": preset, "spec": spec, "path": path, "level": level, "factor": factor, "mode": mode,
            "pixel": pixel, "errors": errors}



def explorer_query(state: Mapping[str, Any]) -> dict[str, str]:
    """The link of the explorer's current state (``ui.trainability.session``)."""
    return grid_view_query(state["fields"], preset=state["preset"], path=state["path"], level=state["level"],
                           factor=state["factor"], mode=state["mode"],
                           pixel=tuple(state["pixel"]) if state["pixel"] else None)


def share_section(state: Mapping[str, Any]) -> None:
    """"Share": a popover with the link that reopens exactly this view."""
    st.markdown("**Share**")
    copy_link(explorer_query(state))


def write_url(state: Mapping[str, Any]) -> None:
    """Write the state into the address bar, last in a run so the link describes what the run drew; remembered so
    the next run can tell a link the user opened (different from ours) from our own writing."""
    query = explorer_query(state)
    write_query_params(query, clear_others=True)
    st.session_state["tx_url"] = dict(query)
