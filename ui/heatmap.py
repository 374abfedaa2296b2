"""A 2-D parameter plane as a plotly heatmap with the invisible click overlay Streamlit's ``on_select`` needs
(see ../shared/streamlit-notes.md) and ticks that stay readable at deep zoom. The zoom arithmetic of a view lives
with the science that defines views (``engine.trainability.views``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def coordinate_decimals(span: float, divisions: float = 10.0) -> int:
    """Decimals needed so values ``span / divisions`` apart print differently (deep zooms need many)."""
    if not span > 0 or not math.isfinite(span):
        return 3
    return max(0, min(17, int(math.ceil(-math.log10(span / divisions)))))


def format_coordinate(value: float, decimals: int) -> str:
    """Fixed-point text with ``decimals`` digits, and a real minus sign."""
    text = f"{value:.{decimals}f}"
    return text.replace("-", "−")


def _nice_step(raw: float) -> float:
    exp = math.floor(math.log10(raw))
    base = raw / 10**exp
    for nice in (1, 2, 2.5, 5, 10):
        if base <= nice + 1e-9:
            return nice * 10**exp
    return 10 ** (exp + 1)


def axis_ticks(lo: float, hi: float, target: int = 6) -> tuple[list[float], list[str]]:
    """About ``target`` round tick values in ``[lo, hi]`` and labels with just enough digits to differ.

    Plotly's own labels collapse to identical text (or SI suffixes) once a view is ~1e-6 wide; here the step is a
    round 1/2/2.5/5 x 10^k and the labels carry as many decimals as that step needs, so the two ends of a deep
    view always read differently.
    """
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    span = hi - lo
    if not span > 0:
        return [lo], [format_coordinate(lo, 3)]
    step = _nice_step(span / max(1, target))
    decimals = max(0, -math.floor(math.log10(step)) + (1 if round(step / 10 ** math.floor(math.log10(step)), 6) == 2.5 else 0))
    first = math.ceil(lo / step)
    vals: list[float] = []
    k = first
    while k * step <= hi + step * 1e-9 and len(vals) < 4 * target:
        vals.append(k * step)
        k += 1
    return vals, [format_coordinate(v, decimals) for v in vals]


def heatmap_figure(
    z: Any,
    view: Sequence[float],
    *,
    colorscale: Any,
    zmin: float | None = None,
    zmax: float | None = None,
    hover_text: Any = None,
    x_title: str = "x",
    y_title: str = "y",
    legend: Sequence[tuple[str, str]] = (),
    overlay_max: int = 128,
    overlay_min: int = 64,
    marker: tuple[float, float] | None = None,
    height: int = 620,
    title: str | None = None,
):
    """A plotly heatmap of ``z`` (row 0 at the bottom = smallest y) over ``view``, ready for click and box zoom.

    Why the overlay: Streamlit's ``on_select`` gets no event from a click on a bare heatmap, so an invisible
    ``Scattergl`` grid (between ``overlay_min`` and ``overlay_max`` points a side, never sparser, or clicks fall
    between points) lies on top; a click selects its nearest point. The overlay also carries the hover text
    (the heatmap's own hover would be hidden under it): each overlay point shows ``hover_text`` of the nearest
    heatmap pixel. ``legend`` adds coloured squares naming what colours mean; ``marker`` draws a ring at a point
    (e.g. an inspected pixel). Ticks come from :func:`axis_ticks`, so they stay readable at deep zoom.
    """
    import numpy as np
    import plotly.graph_objects as go

    z = np.asarray(z)
    ny, nx = z.shape
    x0, x1, y0, y1 = (float(v) for v in view)
    xs = np.linspace(x0, x1, nx)
    ys = np.linspace(y0, y1, ny)
    fig = go.Figure()
    fig.add_trace(go.Heatmap(
        x=xs, y=ys, z=z, colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=False, hoverinfo="skip",
        name="map",
    ))
    mx = int(min(max(nx, overlay_min), overlay_max))
    my = int(min(max(ny, overlay_min), overlay_max))
    ox = np.linspace(x0, x1, mx)
    oy = np.linspace(y0, y1, my)
    gx, gy = np.meshgrid(ox, oy)
    overlay: dict[str, Any] = dict(
        x=gx.ravel(), y=gy.ravel(), mode="markers", marker=dict(size=10, opacity=0, color="black"),
        showlegend=False, name="click", hoverlabel=dict(namelength=0),
    )
    if hover_text is not None:
        ht = np.asarray(hover_text, dtype=object)
        jx = np.rint((ox - x0) / (x1 - x0) * (nx - 1)).astype(int) if nx > 1 else np.zeros(mx, int)
        iy = np.rint((oy - y0) / (y1 - y0) * (ny - 1)).astype(int) if ny > 1 else np.zeros(my, int)
        overlay["text"] = ht[np.ix_(iy, jx)].ravel().tolist()
        overlay["hovertemplate"] = "%{text}<extra></extra>"
    else:
        overlay["hoverinfo"] = "x+y"
    fig.add_trace(go.Scattergl(**overlay))
    for name, color in legend:
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name=name, hoverinfo="skip",
            marker=dict(symbol="square", size=14, color=color, line=dict(width=1, color="#444")),
        ))
    if marker is not None:
        fig.add_trace(go.Scatter(
            x=[marker[0]], y=[marker[1]], mode="markers", name="inspected", hoverinfo="skip",
            marker=dict(symbol="circle-open", size=18, color="black", line=dict(width=3)),
        ))
    xv, xt = axis_ticks(x0, x1)
    yv, yt = axis_ticks(y0, y1)
    fig.update_xaxes(title=x_title, range=[x0, x1], tickvals=xv, ticktext=xt, showgrid=False, zeroline=False,
                     constrain="domain")
    fig.update_yaxes(title=y_title, range=[y0, y1], tickvals=yv, ticktext=yt, showgrid=False, zeroline=False,
                     constrain="domain")
    fig.update_layout(
        height=height, margin=dict(l=70, r=20, t=60 if title else 40, b=60), hovermode="closest",
        title=title, legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0, font=dict(size=13)),
        plot_bgcolor="white", uirevision=None,
    )
    return fig
