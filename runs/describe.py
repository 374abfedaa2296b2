"""A run's spec in people's words: the few fields that tell runs of one kind apart (a grid's preset, resolution
and steps; a training's variant, dataset and epochs; a Kronecker graph's base, power and task), and every field
flattened for a side-by-side table of runs.

The names that need an engine registry (a grid's preset, a FractalNet's variant) are looked up lazily, so
importing :mod:`runs` imports no torch; a spec an older version wrote still gets its plain fields.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)


def value_text(value: Any) -> str:
    """One spec value as a short text: ``0.004``, ``[32, 64]``, ``—`` for none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


def field_order(kind: str) -> list[str]:
    """The top-level fields of ``kind``'s spec class in their declared order (a stored record sorts its keys);
    empty when the kind or its class is unknown here."""
    import dataclasses

    from runs import kinds

    known = kinds.get(kind)
    try:
        cls = known.spec_class() if known is not None else None
    except Exception:  # noqa: BLE001 - a kind whose module is not installed: keep the record's order
        return []
    return [f.name for f in dataclasses.fields(cls)] if cls is not None and dataclasses.is_dataclass(cls) else []


def flatten(spec: Mapping[str, Any] | None, kind: str | None = None) -> dict[str, str]:
    """Every field of a spec dict as ``{"model.join": "mean", ...}`` (nested tables joined with dots), in the
    order ``kind``'s spec class declares them when it is given."""
    out: dict[str, str] = {}
    spec = spec or {}
    if kind is not None:
        order = {name: i for i, name in enumerate(field_order(kind))}
        spec = dict(sorted(spec.items(), key=lambda kv: order.get(kv[0], len(order))))

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            out[prefix[:-1]] = value_text(value)

    for k, v in spec.items():
        walk(f"{k}.", v)
    return out


def _get(spec: Mapping[str, Any], path: str) -> Any:
    value: Any = spec
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _pixels(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]}×{value[1]} px"
    return value_text(value)


def _view(spec: Mapping[str, Any]) -> str:
    x, y = spec.get("x_range"), spec.get("y_range")
    if not (isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)) and len(x) == len(y) == 2):
        return "—"
    return f"x {value_text(x[0])}…{value_text(x[1])}, y {value_text(y[0])}…{value_text(y[1])}"


def _preset(grid: Mapping[str, Any]) -> str:
    from engine.trainability.presets import matching_preset

    return matching_preset(dict(grid)) or "custom"


def _grid(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [("preset", _named(_preset, spec)), ("activation", value_text(spec.get("activation"))),
            ("resolution", _pixels(spec.get("resolution"))), ("steps", value_text(spec.get("steps"))),
            ("view", _view(spec)), ("dtype", value_text(spec.get("dtype")))]


def _video(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    grid = spec.get("grid") if isinstance(spec.get("grid"), Mapping) else {}
    return [("preset", _named(_preset, grid)), ("activation", value_text(grid.get("activation"))),
            ("keyframes", _pixels(spec.get("resolution"))),
            ("frames per level", value_text(spec.get("frames_per_level"))), ("fps", value_text(spec.get("fps"))),
            ("view", _view(grid))]


def _variant(spec: Mapping[str, Any]) -> str:
    from engine.fractalnet.train import TrainSpec
    from engine.fractalnet.variants import OVERRIDABLE, match_variant

    return match_variant(TrainSpec.from_dict(dict(spec)).model, ignore=OVERRIDABLE) or "custom"


def _fractalnet(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [("variant", _named(_variant, spec)), ("dataset", value_text(spec.get("dataset"))),
            ("epochs", value_text(spec.get("epochs"))), ("batch", value_text(spec.get("batch_size"))),
            ("optimiser", value_text(spec.get("optimizer"))), ("lr", value_text(spec.get("lr"))),
            ("join", value_text(_get(spec, "model.join")))]


def _base(graph: Mapping[str, Any]) -> str:
    names, base = graph.get("names"), graph.get("base")
    if isinstance(names, (list, tuple)) and names:
        return ",".join(map(str, names)) + f" ({len(names)} nodes)"
    return f"{len(base)} nodes" if isinstance(base, (list, tuple)) else "—"


def _kronecker(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    graph = spec.get("graph") if isinstance(spec.get("graph"), Mapping) else {}
    return [("base", _base(graph)), ("power", value_text(graph.get("power"))),
            ("task", value_text(spec.get("task"))), ("width", value_text(spec.get("width"))),
            ("epochs", value_text(spec.get("epochs"))), ("baselines", value_text(spec.get("baselines")))]


def _named(lookup: Callable[[Mapping[str, Any]], str], spec: Mapping[str, Any]) -> str:
    """A registry name for ``spec`` (``"—"`` when the spec does not parse: an old or hand-edited record)."""
    try:
        return lookup(spec)
    except Exception as exc:  # noqa: BLE001 - any spec a record holds must still give a row
        log.debug("describe: %s failed: %s: %s", lookup.__name__, type(exc).__name__, exc)
        return "—"


KEY_FIELDS: dict[str, Callable[[Mapping[str, Any]], list[tuple[str, str]]]] = {
    "grid": _grid, "zoom_video": _video, "fractalnet_train": _fractalnet, "kron_train": _kronecker,
}


def key_fields(kind: str, spec: Mapping[str, Any] | None, max_items: int = 6) -> list[tuple[str, str]]:
    """The fields that tell runs of ``kind`` apart, as ``[(label, text), ...]``; a kind without a list gets its
    first ``max_items`` fields. Never raises for a damaged spec (its fields read ``—``)."""
    if not isinstance(spec, Mapping) or not spec:
        return []
    pick = KEY_FIELDS.get(kind)
    if pick is not None:
        try:
            return pick(spec)
        except Exception as exc:  # noqa: BLE001 - a record of any shape must still give a row
            log.warning("describe: key fields of a %s spec: %s: %s", kind, type(exc).__name__, exc)
    return list(flatten(spec, kind).items())[:max_items]
