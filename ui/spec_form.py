"""Widgets generated from a spec field's declaration (range, choices, help), so no page restates a setting.

``spec_input(GridSpec, "width", key="tr-width")`` draws the right widget for the field's type, bounded by its
declared range, with its help text; the value a user can enter is exactly what the spec accepts.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.specs import FieldInfo, field_info


def _format(info: FieldInfo) -> str | None:
    return None if info.kind is int else "%g"


def _number(info: FieldInfo, label: str, value: Any, key: str, help: str, **kw: Any) -> Any:
    lo, hi = info.meta.range if info.meta.range is not None else (None, None)
    cast = int if info.kind is int else float
    args: dict[str, Any] = dict(
        min_value=None if lo is None else cast(lo), max_value=None if hi is None else cast(hi),
        step=cast(info.meta.step) if info.meta.step is not None else (1 if info.kind is int else None),
        format=_format(info), key=key, help=help, **kw,
    )
    if key not in st.session_state:
        args["value"] = None if value is None else cast(value)
    return st.number_input(label, **args)


def spec_input(spec_cls: type, name: str, *, key: str, value: Any = None, label: str | None = None,
               help: str | None = None, **widget_kwargs: Any) -> Any:
    """Draw the widget for ``spec_cls.name`` (initial ``value``: the field's default) and return its value.

    Choices become a select box, booleans a checkbox, numbers a bounded number input (an optional number may be
    left empty = ``None``), pairs two number inputs side by side. Extra keyword arguments (``disabled``, ...)
    go to the Streamlit widget.
    """
    info = field_info(spec_cls, name)
    value = info.default if value is None else value
    label = label or info.label
    help = help if help is not None else (f"{info.meta.help} Allowed: {info.allowed()}.".strip())
    if info.meta.choices is not None and not info.length:
        options = list(info.meta.choices)
        args: dict[str, Any] = dict(options=options, key=key, help=help, **widget_kwargs)
        if key not in st.session_state:
            args["index"] = options.index(value) if value in options else 0
        return st.selectbox(label, **args)
    if info.kind is bool:
        args = dict(key=key, help=help, **widget_kwargs)
        if key not in st.session_state:
            args["value"] = bool(value)
        return st.checkbox(label, **args)
    if info.kind is str:
        args = dict(key=key, help=help, **widget_kwargs)
        if key not in st.session_state:
            args["value"] = "" if value is None else str(value)
        return st.text_input(label, **args)
    if info.length:
        cols = st.columns(info.length)
        out = []
        for i, col in enumerate(cols):
            with col:
                part = None if value is None else value[i]
                out.append(_number(info, f"{label} ({i + 1})" if i else label, part, f"{key}-{i}", help,
                                   **widget_kwargs))
        return tuple(out)
    return _number(info, label, value, key, help, **widget_kwargs)
