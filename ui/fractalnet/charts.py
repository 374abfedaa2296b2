"""The page's side of :mod:`engine.fractalnet.charts`: a chart description drawn as a plotly figure, and offered
as a PNG rendered from that same description, so what is downloaded is what is drawn (same series, colours,
widths and order). The PNG is rendered only when its button is clicked (a deferred download).
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
import streamlit as st

from engine.fractalnet.charts import Chart, chart_png
from ui.downloads import download_row

DOWNLOAD_ICON = ":material/download:"


def figure(chart: Chart) -> go.Figure:
    """The plotly figure of ``chart``: bars, then heat map, then each series in order (the last on top)."""
    fig = go.Figure()
    for b in chart.bars:
        fig.add_trace(go.Bar(
            x=list(b.labels), y=list(b.values), name=b.name,
            marker_color=list(b.colors) if len(b.colors) == len(b.values) else b.colors[0],
            text=list(b.texts) or None, textposition="outside" if b.texts else None,
            hovertext=list(b.hover) or None, hoverinfo="text+y" if b.hover else None,
        ))
    h = chart.heat
    if h is not None:
        stops = [[i / (len(h.colors) - 1), c] for i, c in enumerate(h.colors)]
        fig.add_trace(go.Heatmap(z=[list(r) for r in h.z], x=list(h.x), y=list(h.y), colorscale=stops,
                                 text=[list(r) for r in h.z], texttemplate="%{text}" if h.text else None,
                                 hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    for s in chart.series:
        fig.add_trace(go.Scatter(
            x=list(s.x), y=list(s.y), name=s.name, mode="lines+markers" if s.marker else "lines",
            line=dict(color=s.color, width=s.width, dash=s.dash), marker=dict(size=s.marker) if s.marker else None,
            opacity=s.opacity, showlegend=s.legend, legendgroup=s.group,
        ))
    fig.update_layout(
        title=chart.title, height=chart.height, barmode="group", xaxis_title=chart.x_title or None,
        yaxis_title=chart.y_title or None, margin=dict(l=50, r=20, t=50, b=40),
        legend=dict(orientation="h", yref="container", yanchor="bottom", y=0, x=0),  # below: clear of the title
    )
    if h is not None:
        fig.update_layout(xaxis=dict(type="category"), yaxis=dict(type="category", autorange="reversed"))
    if chart.log_y:
        fig.update_yaxes(type="log")
    elif chart.y_range is not None:
        fig.update_yaxes(range=list(chart.y_range))
    if chart.y_percent:
        fig.update_yaxes(tickformat=".0%")
    return fig


def draw(chart: Chart, key: str) -> None:
    st.plotly_chart(figure(chart), key=key, width="stretch")


def downloads(charts: Mapping[str, Chart], key: str, extra: Mapping[str, tuple[bytes, str]] | None = None) -> None:
    """One button per chart (``{file name: chart}``), each a PNG of the chart as drawn, rendered on click;
    ``extra`` files (already bytes) join the row."""
    files = {name: ((lambda c=c: chart_png(c)), "image/png") for name, c in charts.items()}
    files.update(extra or {})
    download_row(files, key=key, icon=DOWNLOAD_ICON)
