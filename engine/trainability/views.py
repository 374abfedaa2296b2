"""Views of the hyperparameter plane: zoom by a click or a box, glide between two views, and the spec that
computes a view, so the explorer, the CLI and the zoom video agree on every one of them.

A view is ``(x0, x1, y0, y1)`` in the grid's axis units (log10 hyperparameters).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from engine.trainability.cost import float32_resolves
from engine.trainability.spec import MAX_LATTICE_INDEX, MAX_LATTICE_LEVEL, GridSpec, lattice_values

View = tuple[float, float, float, float]


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
    """``spec`` moved to ``view`` (a ``ValueError`` from the spec if the view cannot be computed there), with
    linspace coordinates (no lattice; :func:`view_spec` finds one)."""
    return dataclasses.replace(spec, x_range=(float(view[0]), float(view[1])),
                               y_range=(float(view[2]), float(view[3])), lattice=None)


def promote_dtype(spec: GridSpec) -> tuple[GridSpec, bool]:
    """float32 raised to float64 where float32 cannot tell the view's neighbouring pixels apart; and whether it
    was. A float32 map of such a view would show bands of identical pixels, not the boundary."""
    if spec.dtype == "float32" and not float32_resolves(spec):
        return dataclasses.replace(spec, dtype="float64"), True
    return spec, False


def view_spec(spec: GridSpec, view: Sequence[float] | None = None) -> tuple[GridSpec, bool]:
    """The spec that computes ``view`` (default: ``spec``'s own) with :func:`promote_dtype` applied.

    ``spec``'s view and resolution are the zoom path's root (or, when ``spec`` has a lattice, that lattice's
    root). A ``view`` lying on the root's pixel lattice at a level L >= 1 (2**L times narrower, its corners on
    lattice points) gets a spec WITH that ``lattice``, so its pixels share bits with every other view on it;
    any other view gets linspace coordinates as before."""
    if view is None:
        return promote_dtype(spec)
    lattice = find_lattice(spec, view)
    if lattice is None:
        return promote_dtype(with_view(spec, view))
    return promote_dtype(lattice_spec(spec, lattice))


def _root_axes(spec: GridSpec) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per axis ``(origin, step, width)`` of the root view behind ``spec``: its lattice's level 0, or its view."""
    if spec.lattice is not None:
        xo, xs, yo, ys = spec.lattice[:4]
        return (xo, xs, xs * (spec.n_x - 1)), (yo, ys, ys * (spec.n_y - 1))
    (x0, x1), (y0, y1) = spec.x_range, spec.y_range
    return (x0, (x1 - x0) / (spec.n_x - 1), x1 - x0), (y0, (y1 - y0) / (spec.n_y - 1), y1 - y0)


def _on_lattice(lo: float, hi: float, origin: float, step: float, level: int, n: int) -> int | None:
    """The index of ``lo`` on the level's lattice when ``lo`` and ``hi`` are lattice points ``n - 1`` apart
    (within 1e-6 of a step, or two units in the last place where that is coarser); else None."""
    fine = step * 2.0 ** -level
    index = round((lo - origin) / fine)
    if abs(index) + n > MAX_LATTICE_INDEX:
        return None
    a, b = lattice_values(origin, step, level, index, n)[[0, -1]]
    tol = max(1e-6 * fine, 2.0 * float(np.spacing(max(abs(lo), abs(hi)))))
    if tol >= 0.25 * fine:
        return None
    return index if abs(a - lo) <= tol and abs(b - hi) <= tol else None


def find_lattice(spec: GridSpec, view: Sequence[float]):
    """The ``lattice`` of ``view`` on the root lattice behind ``spec`` at a level >= 1, or None."""
    x0, x1, y0, y1 = check_view("view", view)
    (xo, xs, xw), (yo, ys, yw) = _root_axes(spec)
    levels = {round(math.log2(xw / (x1 - x0))), round(math.log2(yw / (y1 - y0)))}
    if len(levels) != 1:
        return None
    level = levels.pop()
    if not 1 <= level <= MAX_LATTICE_LEVEL:
        return None
    col0 = _on_lattice(x0, x1, xo, xs, level, spec.n_x)
    row0 = _on_lattice(y0, y1, yo, ys, level, spec.n_y)
    if col0 is None or row0 is None:
        return None
    return (xo, xs, yo, ys, level, col0, row0)


def lattice_spec(spec: GridSpec, lattice) -> GridSpec:
    """``spec`` moved onto ``lattice`` (its ranges set to the lattice's exact first and last coordinates)."""
    xo, xs, yo, ys, level, col0, row0 = lattice
    xv = lattice_values(xo, xs, level, col0, spec.n_x)
    yv = lattice_values(yo, ys, level, row0, spec.n_y)
    return dataclasses.replace(spec, x_range=(float(xv[0]), float(xv[-1])), y_range=(float(yv[0]), float(yv[-1])),
                               lattice=tuple(lattice))


def snapped_zoom(root_view: Sequence[float], resolution, view: Sequence[float], x: float, y: float,
                 factor: float) -> View:
    """The view ``factor`` times narrower about ``(x, y)`` (see :func:`zoom_view`), snapped to the pixel lattice
    of ``root_view`` at ``resolution`` when ``factor`` is a power of two >= 2 and ``view`` is 2**L times narrower
    than the root: the new view's first pixel sits on a lattice index that is a multiple of ``factor`` (so
    even), and every ``factor``-th column and row is a pixel of the lattice one zoom out: a 2x click reuses a
    quarter of its pixels bit for bit. Any other case: plain :func:`zoom_view`."""
    plain = zoom_view(view, x, y, factor)
    k = math.log2(factor) if factor > 0 else 0.0
    if not (factor >= 2 and k == int(k)):
        return plain
    n_x, n_y = (resolution, resolution) if isinstance(resolution, (int, np.integer)) else resolution
    rx0, rx1, ry0, ry1 = check_view("root_view", root_view)
    vx0, vx1, vy0, vy1 = check_view("view", view)
    parent = {math.log2((rx1 - rx0) / (vx1 - vx0)), math.log2((ry1 - ry0) / (vy1 - vy0))}
    levels = {round(p) for p in parent}
    if len(levels) != 1 or any(abs(p - round(p)) > 1e-3 for p in parent):
        return plain
    level = levels.pop() + int(k)
    if not 1 <= level <= MAX_LATTICE_LEVEL:
        return plain
    m = int(factor)
    corners = []
    for lo, hi, n, c in ((rx0, rx1, n_x, x), (ry0, ry1, n_y, y)):
        step = (hi - lo) / (n - 1)
        first = (c - lo) / (step * 2.0 ** -level) - (n - 1) / 2
        index = m * round(first / m)
        if abs(index) + n > MAX_LATTICE_INDEX:
            return plain
        corners.extend(float(v) for v in lattice_values(lo, step, level, index, n)[[0, -1]])
    return (corners[0], corners[1], corners[2], corners[3])


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
