"""The lab's interactive charts: adjacency heatmap, layered data flow, stream strip, per-model curves.

What the adjacency and data-flow charts show, where and how big, comes from :mod:`engine.kronecker.drawing`,
whose descriptions the PNG downloads render too (:mod:`engine.kronecker.export`); this module only turns them
into plotly figures with hover texts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go

from engine.kronecker import drawing
from engine.kronecker.drawing import (BACKGROUND, DRAW_EDGES, DRAW_NODES, EDGE_RGBA, NAME_COLOR, NAME_PX,
                                      SUMMARY_ARC_RGBA, VIRIDIS, Frame)
from engine.kronecker.graph import KronGraph

STREAM_STRIP_NODES = 2048
LAYER_PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6",
                 "#9D755D", "#BAB0AC")


def _rgba(rgba: tuple) -> str:
    return "rgba({},{},{},{})".format(*rgba)


def _frame_layout(fig: go.Figure, frame: Frame, title: str) -> None:
    """The figure's height, margins and axis ranges exactly as the drawing laid them out (the PNG uses the same)."""
    l, r, t, b = frame.margin
    fig.update_layout(height=frame.height, margin=dict(l=l, r=r, t=t, b=b, autoexpand=False), plot_bgcolor=BACKGROUND,
                      title=dict(text=title, x=0, xref="paper", y=1 - 6 / frame.height, yanchor="top",
                                 font=dict(size=13)),
                      legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"))
    fig.update_xaxes(range=list(frame.x_range), autorange=False, showgrid=False, zeroline=False, automargin=False)
    fig.update_yaxes(range=list(frame.y_range), autorange=False, showgrid=False, zeroline=False, automargin=False)


def adjacency_figure(graph: KronGraph, weights: Any = None, title: str | None = None,
                     colorbar: str = "weight") -> tuple[go.Figure, str | None]:
    """The adjacency (or ``weights``, a sparse matrix, on its pattern) as a heatmap, and a note when it is drawn
    as blocks. The same cells, scale and range as ``adjacency.png`` (:func:`drawing.adjacency_drawing`).

    Rows and columns are categorical axes named by node (or node range), so the hover says which nodes a cell
    joins without one hover string per cell.
    """
    d = drawing.adjacency_drawing(graph, weights, title=title, colorbar=colorbar)
    names = list(d.names)
    scale = [[i / (len(VIRIDIS) - 1), c] for i, c in enumerate(VIRIDIS)]
    hover = ("rows %{y}<br>columns %{x}<br>%{z:.3g}<extra></extra>" if d.blocks
             else "row %{y} reads column %{x}<br>value %{z}<extra></extra>")
    fig = go.Figure(go.Heatmap(z=d.values, x=names, y=names, colorscale=scale, zmin=d.zmin, zmax=d.zmax,
                               colorbar_title=d.colorbar, xgap=0 if d.blocks else 1, ygap=0 if d.blocks else 1,
                               hovertemplate=hover))
    if d.ticks:
        fig.update_xaxes(tickmode="array", tickvals=names, ticktext=list(d.ticks), tickangle=-90)
        fig.update_yaxes(tickmode="array", tickvals=names, ticktext=list(d.ticks))
    else:
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
    note = None
    if d.blocks:
        n, m, f = graph.n_nodes, len(names), d.factor
        what = "share of non-zero entries in the block" if weights is None else "mean weight of the block's edges"
        note = (f"Downsampled for drawing: {n:,} nodes shown as {m}×{m} blocks of {f}×{f} nodes "
                f"(colour = {what}). Nothing is cut off; the downloads hold every entry.")
    fig.update_yaxes(autorange="reversed", title="row (reads)", showgrid=False)
    fig.update_xaxes(title="column (is read)", side="top", showgrid=False)
    fig.update_layout(height=d.height, margin=dict(l=10, r=10, t=40 if not title else 70, b=10), title=title,
                      plot_bgcolor=BACKGROUND)
    return fig, note


def _summary_figure(graph: KronGraph) -> tuple[go.Figure, str]:
    d = drawing.summary_drawing(graph)
    fig = go.Figure()
    for (a, b, c), x, y, w in zip(d.arcs, d.arcs_x, d.arcs_y, d.arcs_px):
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=_rgba(SUMMARY_ARC_RGBA), width=w),
                                 showlegend=False, name=f"{a}→{b}",
                                 hovertemplate=f"{c:,} edges from depth {a} into depth {b}<extra></extra>"))
    fig.add_trace(go.Bar(x=np.arange(len(d.counts)), y=d.counts, width=d.bar_width, marker_color=d.bar_color,
                         showlegend=False, name="nodes", hovertemplate="depth %{x}: %{y:,} nodes<extra></extra>"))
    _frame_layout(fig, d.frame, d.title)
    fig.update_xaxes(title="depth (sequential step)", dtick=1)
    fig.update_yaxes(title="nodes at this depth", showline=True)
    note = (f"{graph.n_nodes:,} nodes and {graph.n_edges:,} edges are too many to draw one by one (limit "
            f"{DRAW_NODES} nodes, {DRAW_EDGES:,} edges): this is the layered summary, nodes counted per depth, the "
            "edges between two depths as one arc (hover it for the count). The data-flow PNG is this same chart.")
    return fig, note


def dataflow_figure(graph: KronGraph) -> tuple[go.Figure, str | None]:
    """Nodes placed by depth, grey edges, one coloured dot per stream; a depth summary for big graphs. Dots, letters
    and names are sized by :func:`drawing.dataflow_drawing` so that none overlaps another (and ``dataflow.png``
    draws the same); a name left out is in the hover text."""
    if drawing.dataflow_is_summary(graph):
        return _summary_figure(graph)
    d = drawing.dataflow_drawing(graph)
    fig = go.Figure()
    ex, ey = ([None if math.isnan(v) else v for v in a.tolist()] for a in (d.edges_x, d.edges_y))  # null: a gap
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color=_rgba(EDGE_RGBA), width=1),
                             hoverinfo="skip", name="edges", showlegend=False, connectgaps=False))
    hover = np.array([[label, eq] for label, eq in zip(d.labels, d.equations)], dtype=object)
    for s in d.streams:
        runs = s.runs.tolist()
        fig.add_trace(go.Scatter(
            x=s.x, y=s.y, mode="markers+text" if s.letters else "markers", name=f"stream {s.stream + 1}",
            text=list(s.letters) or None, textposition="middle center",
            textfont=dict(size=d.letter_px or 10, color=["white" if r else s.color for r in runs]),
            marker=dict(size=d.dot_px, color=s.color, symbol=["circle" if r else "circle-open" for r in runs],
                        line=dict(width=1.5, color=s.color)),
            customdata=hover,
            hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]}<extra>" + f"stream {s.stream + 1}</extra>"))
    if d.names:
        fig.add_trace(go.Scatter(x=d.names_x, y=d.names_y, mode="text", text=list(d.names), hoverinfo="skip",
                                 textfont=dict(size=NAME_PX, color=NAME_COLOR), showlegend=False, name="names"))
    _frame_layout(fig, d.frame, d.title)
    fig.update_xaxes(title=d.x_title, tickmode="array", tickvals=list(range(d.levels)), showline=True)
    fig.update_yaxes(visible=False)
    return fig, None


def streams_figure(graph: KronGraph) -> tuple[go.Figure, str | None]:
    """One row per stream, one cell per node, coloured by the layer that stream runs there."""
    n = min(graph.n_nodes, STREAM_STRIP_NODES)
    names = graph.vocabulary
    z = np.where(graph.runs[:n], graph.layer_codes[:n], -1).T.astype(float)
    z[z < 0] = np.nan
    text = [[names[int(c)] if not math.isnan(c) else "pass" for c in row] for row in z]
    k = max(len(names), 1)
    scale = []
    for i in range(k):
        c = LAYER_PALETTE[i % len(LAYER_PALETTE)]
        scale += [(i / k, c), ((i + 1) / k, c)]
    fig = go.Figure(go.Heatmap(
        z=z, x=np.arange(1, n + 1), y=[f"stream {i + 1}" for i in range(graph.n_streams)], text=text,
        colorscale=scale, zmin=-0.5, zmax=k - 0.5, xgap=1 if n <= 200 else 0, ygap=2,
        colorbar=dict(tickvals=list(range(k)), ticktext=list(names), title="layer"),
        texttemplate="%{text}" if n <= 60 else None,
        hovertemplate="%{y}, node X%{x}: %{text}<extra></extra>"))
    fig.update_layout(height=90 + 34 * graph.n_streams, margin=dict(l=10, r=10, t=20, b=30))
    fig.update_yaxes(autorange="reversed")
    note = None
    if graph.n_nodes > n:
        note = f"The strip shows nodes X1–X{n:,} of {graph.n_nodes:,}; the text above and the JSON download hold all."
    return fig, note


def model_curves(points, y: str, title: str, x: str = "step") -> go.Figure:
    """One line per model from points or job events (``{"model", "step", y, ...}``): the description
    ``export.curves_png`` renders for the download (:func:`drawing.curves_drawing`)."""
    return curves_figure(drawing.curves_drawing(points, y, title, x))


def curves_figure(d: drawing.CurvesDrawing) -> go.Figure:
    fig = go.Figure()
    for c in d.curves:
        fig.add_trace(go.Scatter(x=c.x, y=c.y, mode="lines+markers" if c.markers else "lines", name=c.name,
                                 line=dict(color=c.color, width=d.line_px), marker=dict(size=d.marker_px)))
    fig.update_layout(title=d.title, height=d.height, margin=dict(l=10, r=10, t=40, b=10), xaxis_title=d.x_title,
                      yaxis_title=d.y_title, legend=dict(orientation="h", y=-0.25))
    return fig
