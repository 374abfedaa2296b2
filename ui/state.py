"""Every view is a link: typed values to and from ``st.query_params``, one encoding for every page.

The pure ``encode_query_value`` / ``decode_query_value`` do the text conversion (floats round-trip exactly, so a
deep-zoom coordinate survives a link) and are testable without Streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import streamlit as st

from engine.specs import fields_of

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
NONE_TOKEN = "none"


def _format_number(value: float | int) -> str:
    """Shortest text that reads back as exactly the same number (``repr`` round-trips floats)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def encode_query_value(value: Any) -> str:
    """Turn a typed value into URL text.

    Scalars become their shortest exact text (floats use ``repr`` so a deep-zoom coordinate survives the round
    trip bit for bit); ``None`` becomes ``"none"``; a flat sequence is comma-joined; a sequence of sequences
    (e.g. a zoom path of ``(x0, x1, y0, y1)`` views) is ``;``-joined rows of comma-joined values.
    """
    if value is None:
        return NONE_TOKEN
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return _format_number(value)
    if isinstance(value, str):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return encode_query_value(value.item())
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (list, tuple)) for v in value):
            return ";".join(",".join(encode_query_value(x) for x in row) for row in value)
        return ",".join(encode_query_value(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__} as a query value")


def _decode_scalar(text: str, like: Any) -> Any:
    text = text.strip()
    if isinstance(like, bool):
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"expected a boolean (1/0/true/false), got {text!r}")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        value = float(text)
        return value
    return text


def decode_query_value(text: str, like: Any) -> Any:
    """Parse URL text back into the type of ``like`` (the default value); raises ``ValueError`` if it cannot.

    ``like`` may be a bool, int, float, str, a tuple/list of those (comma-separated, same length when ``like`` is a
    tuple), or a list of tuples (``;``-separated rows). ``"none"`` decodes to ``None`` for any type.
    """
    if text.strip().lower() == NONE_TOKEN:
        return None
    if isinstance(like, (list, tuple)):
        if like and all(isinstance(v, (list, tuple)) for v in like):
            template = like[0]
            rows = [r for r in text.split(";") if r.strip()]
            return [decode_query_value(r, template) for r in rows]
        parts = [p for p in text.split(",")] if text.strip() else []
        if isinstance(like, tuple):
            if like and len(parts) != len(like):
                raise ValueError(f"expected {len(like)} comma-separated values, got {len(parts)}")
            items = like if like else [""] * len(parts)
            return tuple(_decode_scalar(p, l) for p, l in zip(parts, items))
        elem = like[0] if like else ""
        return [_decode_scalar(p, elem) for p in parts]
    if like is None:
        return text
    return _decode_scalar(text, like)


def read_query_params(
    defaults: Mapping[str, Any],
    *,
    prefix: str = "",
    types: Mapping[str, Any] | None = None,
    errors: list[str] | None = None,
) -> dict[str, Any]:
    """Read ``defaults``' keys from ``st.query_params``, each parsed to its default's type.

    ``types`` gives a template value for keys whose default is ``None`` (e.g. ``{"dataset_size": 0}`` to read an
    int that may be absent). A value that does not parse falls back to the default and, when ``errors`` is a list,
    a line naming the parameter is appended to it, so a page can say "ignored bad link parameter" instead of
    crashing on a hand-edited URL.
    """
    out: dict[str, Any] = {}
    params = st.query_params
    for key, default in defaults.items():
        name = prefix + key
        if name not in params:
            out[key] = default
            continue
        like = (types or {}).get(key, default)
        try:
            out[key] = decode_query_value(params[name], like)
        except (TypeError, ValueError) as exc:
            out[key] = default
            if errors is not None:
                errors.append(f"{name}: {exc}")
    return out


def write_query_params(
    values: Mapping[str, Any],
    *,
    prefix: str = "",
    defaults: Mapping[str, Any] | None = None,
    clear_others: bool = False,
) -> None:
    """Write ``values`` into ``st.query_params`` (the browser's URL updates; no rerun is triggered).

    Only keys whose text changed are written, so calling this on every run is cheap and does not churn the
    browser history. With ``defaults``, a value equal to its default is removed from the URL (shorter links).
    ``clear_others`` removes every other parameter (a page that owns the whole URL).
    """
    params = st.query_params
    wanted: dict[str, str] = {}
    for key, value in values.items():
        if defaults is not None and key in defaults and defaults[key] == value:
            continue
        wanted[prefix + key] = encode_query_value(value)
    if clear_others:
        for name in list(params.keys()):
            if name not in wanted:
                del params[name]
    elif defaults is not None:
        for key in values:
            name = prefix + key
            if name not in wanted and name in params:
                del params[name]
    for name, text in wanted.items():
        if params.get(name) != text:
            params[name] = text


def spec_query(spec_cls: type, spec_dict: Mapping[str, Any], *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Query parameters for every declared field of ``spec_cls`` present in ``spec_dict`` (in field order, so one
    spec is one URL), named by each field's ``param``. How every page's view becomes a link."""
    return {info.param: encode_query_value(spec_dict[info.name]) for info in fields_of(spec_cls)
            if info.name in spec_dict and info.name not in skip}


def parse_spec_query(spec_cls: type, params: Mapping[str, str], base: Mapping[str, Any], *,
                     skip: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[str]]:
    """Inverse of :func:`spec_query` over ``base`` (a ``to_dict()``): the fields with the link's values, and one
    line per parameter that did not parse or lies outside its declared range (that field keeps ``base``'s
    value), so a hand-edited link never crashes a page."""
    out, errors = dict(base), []
    for info in fields_of(spec_cls):
        if info.name in skip or info.param not in params:
            continue
        like: Any = info.kind()
        if info.length:
            like = tuple([like] * info.length)
        try:
            out[info.name] = info.check(decode_query_value(params[info.param], like))
        except (TypeError, ValueError) as exc:
            text = str(exc)
            errors.append(text if text.startswith(f"{info.name}:") else f"{info.param}: {text}")
    return out, errors
