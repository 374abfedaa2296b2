"""The Trainability Explorer's whole state (preset, spec fields, zoom path, level) as query parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from ui.heatmap import View
from ui.state import decode_query_value, encode_query_value

EXPLORER_PAGE = "pages/1_Trainability_Explorer.py"
EXPLORER_URL_PATH = "Trainability_Explorer"
# GridSpec fields that are not written as their own parameter: the ranges are the zoom path's first view.
_VIEW_FIELDS = ("x_range", "y_range")
_VIEW_KEYS = ("preset", "path", "level", "factor", "mode", "px")


def _template_for(hint: Any) -> Any:
    """A sample value of a type hint, so ``decode_query_value`` knows what to parse (None-able hints unwrap)."""
    import types as _types
    import typing

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, _types.UnionType):
        for arg in args:
            if arg is not type(None):
                return _template_for(arg)
        return ""
    if origin is typing.Literal:
        return type(args[0])() if args else ""
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return [_template_for(args[0])]
        return tuple(_template_for(a) for a in args)
    if origin is list:
        return [_template_for(args[0])] if args else []
    if hint in (bool, int, float, str):
        return hint()
    return ""


def grid_spec_templates() -> dict[str, Any]:
    """``{field: sample value}`` for every ``GridSpec`` field (how its query parameter parses)."""
    import dataclasses
    import typing

    from engine.trainability import GridSpec

    hints = typing.get_type_hints(GridSpec)
    return {f.name: _template_for(hints.get(f.name, str)) for f in dataclasses.fields(GridSpec)}


def _view_of(spec_dict: Mapping[str, Any]) -> View:
    xr, yr = spec_dict["x_range"], spec_dict["y_range"]
    return (float(xr[0]), float(xr[1]), float(yr[0]), float(yr[1]))


def matching_preset(spec_dict: Mapping[str, Any]) -> str | None:
    """The preset whose science fields equal ``spec_dict``'s (ignoring view, resolution, dtype); else None."""
    from engine.trainability import PRESETS

    ignore = set(_VIEW_FIELDS) | {"resolution", "dtype"}
    for name, p in PRESETS.items():
        d = p.spec.to_dict()
        if all(d.get(k) == spec_dict.get(k) for k in d if k not in ignore):
            return name
    return None


def grid_view_query(
    spec_dict: Mapping[str, Any],
    *,
    preset: str | None = None,
    path: Sequence[Sequence[float]] | None = None,
    level: int | None = None,
    factor: float | None = None,
    mode: str | None = None,
    pixel: tuple[float, float] | None = None,
) -> dict[str, str]:
    """The query parameters that open the Trainability Explorer on ``spec_dict`` (a ``GridSpec.to_dict()``).

    Every spec field is written explicitly (a link keeps its meaning even if a preset's defaults change later),
    except the ranges, which are the zoom ``path``'s views: ``path[0]`` is the full range (what "reset" returns
    to) and ``path[level]`` the view shown. Without ``path``, the view is ``spec_dict``'s ranges, reached from the
    matching preset's full range when there is one (so "back" and "reset" lead out of a re-opened deep view).
    Used by the explorer for its own URL and by the Runs page to link back to a result.
    """
    spec_dict = dict(spec_dict)
    if preset is None:
        preset = matching_preset(spec_dict)
    if path is None:
        view = _view_of(spec_dict)
        path = [view]
        if preset is not None:
            from engine.trainability import PRESETS

            root = _view_of(PRESETS[preset].spec.to_dict())
            if root != view:
                path = [root, view]
    path = [tuple(float(v) for v in p) for p in path]
    if level is None:
        level = len(path) - 1
    q: dict[str, str] = {}
    if preset is not None:
        q["preset"] = preset
    for name in grid_spec_templates():  # GridSpec's field order, whatever the dict's: one view, one URL
        if name in _VIEW_FIELDS or name not in spec_dict:
            continue
        q[name] = encode_query_value(spec_dict[name])
    q["path"] = encode_query_value(path)
    q["level"] = str(int(level))
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


def parse_grid_view_query(params: Mapping[str, str]) -> dict[str, Any] | None:
    """Inverse of :func:`grid_view_query`: ``None`` when ``params`` hold no explorer state at all.

    Returns ``{"preset", "spec" (a GridSpec, ranges = path[0]), "path", "level", "factor", "mode", "pixel",
    "errors"}``. Fields missing from the link come from the preset (default: the first); a parameter that does
    not parse is ignored with a line in ``errors``; a spec that fails validation falls back to the preset's with
    the ``ValueError``'s message in ``errors``, so a hand-edited link never crashes the page.
    """
    from engine.trainability import PRESETS, GridSpec

    templates = grid_spec_templates()
    known = set(templates) | set(_VIEW_KEYS)
    if not any(k in params for k in known):
        return None
    errors: list[str] = []
    preset = params.get("preset")
    if preset not in PRESETS:
        if preset is not None:
            errors.append(f"preset: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        preset = next(iter(PRESETS))
    base = PRESETS[preset].spec.to_dict()
    fields = dict(base)
    for name, like in templates.items():
        if name in _VIEW_FIELDS or name not in params:
            continue
        try:
            fields[name] = decode_query_value(params[name], like)
        except (TypeError, ValueError) as exc:
            errors.append(f"{name}: {exc}")
    path: list[View] = []
    if "path" in params:
        try:
            rows = decode_query_value(params["path"], [(0.0, 0.0, 0.0, 0.0)])
            path = [tuple(r) for r in (rows or []) if all(math.isfinite(v) for v in r)]
            if rows and len(path) != len(rows):
                errors.append("path: a view with non-finite coordinates was dropped")
        except (TypeError, ValueError) as exc:
            errors.append(f"path: {exc}")
    if path:
        fields["x_range"] = [path[0][0], path[0][1]]
        fields["y_range"] = [path[0][2], path[0][3]]
    try:
        spec = GridSpec.from_dict(fields)
    except (TypeError, ValueError) as exc:
        errors.append(str(exc))
        spec = PRESETS[preset].spec
        path = []
    if not path:
        path = [_view_of(spec.to_dict())]
    import dataclasses

    for i, v in enumerate(path[1:], start=1):  # every view must be computable at this resolution
        try:
            dataclasses.replace(spec, x_range=(v[0], v[1]), y_range=(v[2], v[3]))
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
    if mode not in ("zoom", "inspect"):
        errors.append(f"mode: expected 'zoom' or 'inspect', got {mode!r}")
        mode = "zoom"
    pixel = None
    if "px" in params:
        try:
            pixel = decode_query_value(params["px"], (0.0, 0.0))
        except (TypeError, ValueError) as exc:
            errors.append(f"px: {exc}")
    return {"preset": preset, "spec": spec, "path": path, "level": level, "factor": factor, "mode": mode,
            "pixel": pixel, "errors": errors}
