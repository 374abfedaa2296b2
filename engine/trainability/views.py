"""Views of the hyperparameter plane: zoom by a click or a box, glide between two views, and the spec that
computes a view, so the explorer, the CLI and the zoom video agree on every one of them.

A view is ``(x0, x1, y0, y1)`` in the grid's axis units (log10 hyperparameters).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from engine.trainability.cost import float32_resolves
from engine.trainability.spec import GridSpec

View = tuple[float, float, float, float]

PREVIEW_SIDE = 32  # side of the quick preview computed before each full-resolution view


def view_of(spec: GridSpec) -> View:
    """The view a spec computes."""
    return (float(spec.x_range[0]), float(spec.x_range[1]), float(spec.y_range[0]), float(spec.y_range[1]))


def check_view(name: str, v: Sequence[float]) -> View:
    """``v`` as a view of floats, or ``ValueError`` naming ``name`` when it is not a finite, non-empty box."""
    if len(v) != 4:
        raise ValueError(f"{name}: a view is (x0, x1, y0, y1), got {tuple(v)!r}")
    x0, x1, y0, y1 = (float(a) for a in v)
    if not all(math.isfinite(a) for a in (x0, x1, y0, y1)) or not (x0 < x1 and y0 < y1):
        raise ValueError(f"{name}: a view needs finite x0 < x1 and y0 < y1, got {tuple(v)!r}")
    return (x0, x1, y0, y1)


def same_view(a: Sequence[float], b: Sequence[float]) -> bool:
    """Equal up to rounding far below a pixel."""
    scale = max(a[1] - a[0], a[3] - a[2], b[1] - b[0], b[3] - b[2])
    return all(abs(p - q) <= 1e-12 * scale for p, q in zip(a, b))


def with_view(spec: GridSpec, view: Sequence[float]) -> GridSpec:
    """``spec`` moved to ``view`` (a ``ValueError`` from the spec if the view cannot be computed there)."""
    return dataclasses.replace(spec, x_range=(float(view[0]), float(view[1])),
                               y_range=(float(view[2]), float(view[3])))


def promote_dtype(spec: GridSpec) -> tuple[GridSpec, bool]:
    """float32 raised to float64 where float32 cannot tell the view's neighbouring pixels apart; and whether it
    was. A float32 map of such a view would show bands of identical pixels, not the boundary."""
    if spec.dtype == "float32" and not float32_resolves(spec):
        return dataclasses.replace(spec, dtype="float64"), True
    return spec, False


def view_spec(spec: GridSpec, view: Sequence[float] | None = None) -> tuple[GridSpec, bool]:
    """The spec that computes ``view`` (default: ``spec``'s own) with :func:`promote_dtype` applied."""
    return promote_dtype(spec if view is None else with_view(spec, view))


def preview_spec(spec: GridSpec, side: int = PREVIEW_SIDE) -> GridSpec | None:
    """A coarse version of ``spec`` (at most ``side`` pixels a side) that arrives within seconds; None when
    ``spec`` is already that small."""
    nx, ny = spec.resolution
    if max(nx, ny) <= side:
        return None
    scale = side / max(nx, ny)
    return dataclasses.replace(spec, resolution=(max(2, round(nx * scale)), max(2, round(ny * scale))))


def zoom_view(view: Sequence[float], x: float, y: float, factor: float) -> View:
    """The view ``factor`` times narrower on both axes, centred on the point ``(x, y)``; ``factor < 1`` zooms
    out. The centre is the clicked point itself (not clamped to the old view), so repeated clicks on one
    feature keep it in the middle."""
    if not factor > 0:
        raise ValueError(f"factor: must be > 0, got {factor}")
    x0, x1, y0, y1 = (float(v) for v in view)
    hw, hh = (x1 - x0) / (2 * factor), (y1 - y0) / (2 * factor)
    return (x - hw, x + hw, y - hh, y + hh)


def box_view(xs: Sequence[float], ys: Sequence[float]) -> View:
    """The view spanned by a dragged box (corners in any order); ``ValueError`` for a box with no area."""
    x0, x1 = min(float(v) for v in xs), max(float(v) for v in xs)
    y0, y1 = min(float(v) for v in ys), max(float(v) for v in ys)
    if not (x1 > x0 and y1 > y0):
        raise ValueError("box: the dragged box has no area; drag a rectangle, or click to zoom")
    return (x0, x1, y0, y1)


def view_center(view: Sequence[float]) -> tuple[float, float]:
    x0, x1, y0, y1 = view
    return ((x0 + x1) / 2, (y0 + y1) / 2)


def _axis_interp(a0: float, a1: float, b0: float, b1: float, u: float) -> tuple[float, float]:
    """Interval at fraction u of the way from [a0, a1] to [b0, b1]: geometric in width about a fixed point, so
    the zoom moves at constant speed on log axes and each view lies inside the previous one."""
    wa, wb = a1 - a0, b1 - b0
    r = wb / wa
    if abs(math.log(r)) < 1e-9:  # no zoom on this axis: a straight pan
        lo = a0 + u * (b0 - a0)
        return lo, lo + wa
    p = (b0 - a0 * r) / (1.0 - r)  # the point that stays put: p + (a0 - p) * r = b0
    ru = r**u
    return p + (a0 - p) * ru, p + (a1 - p) * ru


def interpolate_view(a: View, b: View, u: float) -> View:
    """The view at fraction ``u`` in [0, 1] of a smooth zoom from ``a`` to ``b`` (exact at both ends)."""
    if u <= 0.0:
        return a
    if u >= 1.0:
        return b
    x0, x1 = _axis_interp(a[0], a[1], b[0], b[1], u)
    y0, y1 = _axis_interp(a[2], a[3], b[2], b[3], u)
    return (x0, x1, y0, y1)


def levels_between(a: View, b: View) -> int:
    """Keyframe steps needed between two views so that no step zooms by more than 2x on either axis."""
    zx = abs(math.log2((b[1] - b[0]) / (a[1] - a[0])))
    zy = abs(math.log2((b[3] - b[2]) / (a[3] - a[2])))
    return max(1, math.ceil(max(zx, zy) - 1e-9))


def keyframe_views(path: Sequence[View]) -> list[View]:
    """All keyframe views along ``path``: its views plus in-between ones, at most a factor 2 apart."""
    views = [path[0]]
    for a, b in zip(path[:-1], path[1:]):
        n = levels_between(a, b)
        views.extend(interpolate_view(a, b, j / n) for j in range(1, n))
        views.append(b)
    return views
