"""Line charts of a job's progress events (loss, accuracy), drawn live while it runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def curves_figure(
    events: Sequence[Mapping[str, Any]],
    *,
    x: str = "step",
    y: Sequence[str] | str | None = None,
    title: str | None = None,
    log_y: bool = False,
    height: int = 320,
    x_title: str | None = None,
    y_title: str | None = None,
):
    """A plotly line chart with one line per key in ``y``, from event dicts such as ``runs.events(id)``.

    Events lacking ``x`` or a ``y`` key are skipped for that line (jobs mix event kinds); with ``y=None`` every
    numeric key other than ``x`` gets a line. Non-finite values are dropped so one diverged loss does not blank
    the chart.
    """
    import plotly.graph_objects as go

    if isinstance(y, str):
        y = [y]
    if y is None:
        keys: list[str] = []
        for ev in events:
            for k, v in ev.items():
                if k != x and k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool):
                    keys.append(k)
        y = keys
    fig = go.Figure()
    for name in y:
        xs, ys = [], []
        for ev in events:
            if x in ev and name in ev:
                try:
                    xv, yv = float(ev[x]), float(ev[name])
                except (TypeError, ValueError):
                    continue
                if math.isfinite(xv) and math.isfinite(yv) and (not log_y or yv > 0):
                    xs.append(xv)
                    ys.append(yv)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name))
    fig.update_layout(
        title=title, height=height, margin=dict(l=50, r=20, t=40 if title else 20, b=40),
        xaxis_title=x_title or x, yaxis_title=y_title or (y[0] if len(y) == 1 else None),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    if log_y:
        fig.update_yaxes(type="log")
    return fig
