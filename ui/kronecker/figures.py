"""The lab's interactive charts: adjacency heatmap, layered data flow, stream strip, per-model curves.

What each chart shows at which size comes from :mod:`engine.kronecker.export` (the same cut-offs as the PNG
downloads); this module only turns it into plotly figures with hover texts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go

from engine.kronecker.export import DRAW_EDGES, DRAW_NODES, STREAM_COLORS, adjacency_picture, dataflow_is_summary
from engine.kronecker.graph import KronGraph

STREAM_STRIP_NODES = 2048
LAYER_PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6",
                 "#9D755D", "#BAB0AC")
MODEL_COLORS = {"kron_tied": "#0072B2", "kron_untied": "#009E73", "base": "#E69F00", "sequential": "#CC79A7"}


def _range_label(labels, a: int, b: int) -> str:
    return f"X{a + 1} {labels[a]}" if a == b else f"X{a + 1}–X{b + 1} {labels[a]}…{labels[b]}"


def adjacency_figure(graph: KronGraph, weights: Any = None, title: str | None = None,
                     colorbar: str = "weight") -> tuple[go.Figure, str | None]:
    """The adjacency (or ``weights``, a sparse matrix, on its pattern) as a heatmap, and a note when it is drawn
    as blocks.

    Rows and columns are categorical axes named by node (or node range), so the hover says which nodes a cell
    joins without one hover string per cell.
    """
    n, labels = graph.n_nodes, graph.labels
    pic = adjacency_picture(graph, weights)
    z = pic.values
    finite = z[np.isfinite(z)]
    lo, hi = (min(0.0, float(finite.min())), max(float(finite.max()), 1e-9)) if finite.size else (0.0, 1.0)
    note = None
    if not pic.downsampled:
        names = [f"X{i + 1} {labels[i]}" for i in range(n)]
        fig = go.Figure(go.Heatmap(z=z, x=names, y=names, colorscale="Viridis", colorbar_title=colorbar,
                                   zmin=lo, zmax=hi, xgap=1, ygap=1,
                                   hovertemplate="row %{y} reads column %{x}<br>value %{z}<extra></extra>"))
        if n <= 40:
            fig.update_xaxes(tickmode="array", tickvals=names, ticktext=list(labels), tickangle=-90)
            fig.update_yaxes(tickmode="array", tickvals=names, ticktext=list(labels))
        else:
            fig.update_xaxes(showticklabels=False)
            fig.update_yaxes(showticklabels=False)
    else:
        names = [_range_label(labels, int(a), int(b)) for a, b in zip(pic.starts, pic.ends())]
        fig = go.Figure(go.Heatmap(z=z, x=names, y=names, colorscale="Viridis", zmin=lo, zmax=hi,
                                   colorbar_title="density" if weights is None else colorbar,
                                   hovertemplate="rows %{y}<br>columns %{x}<br>%{z:.3g}<extra></extra>"))
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
        what = "share of non-zero entries in the block" if weights is None else "mean weight of the block's edges"
        m, f = len(pic.starts), pic.factor
        note = (f"Downsampled for drawing: {n:,} nodes shown as {m}×{m} blocks of {f}×{f} nodes "
                f"(colour = {what}). Nothing is cut off; the downloads hold every entry.")
    fig.update_yaxes(autorange="reversed", title="row (reads)", showgrid=False)
    fig.update_xaxes(title="column (is read)", side="top", showgrid=False)
    fig.update_layout(height=560 if n > 12 else 400, margin=dict(l=10, r=10, t=40 if not title else 70, b=10),
                      title=title)
    return fig, note


def _depth_summary_figure(graph: KronGraph) -> tuple[go.Figure, str]:
    counts, edges = graph.depth_summary()
    into = np.zeros(len(counts), dtype=np.int64)
    for (_a, b), c in edges.items():
        into[b] += c
    fig = go.Figure(go.Bar(
        x=np.arange(len(counts)), y=counts, marker_color=STREAM_COLORS[0], customdata=np.stack([into], axis=1),
        hovertemplate="depth %{x}: %{y:,} nodes<br>%{customdata[0]:,} edges arrive here<extra></extra>"))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="depth (sequential step)",
                      yaxis_title="nodes at this depth", bargap=0.15)
    note = (f"{graph.n_nodes:,} nodes and {graph.n_edges:,} edges are too many to draw one by one (limit "
            f"{DRAW_NODES} nodes, {DRAW_EDGES:,} edges): this is the layered summary, nodes counted per depth. The "
            "data-flow PNG download draws the same summary with the edges between depths.")
    return fig, note


def dataflow_figure(graph: KronGraph) -> tuple[go.Figure, str | None]:
    """Nodes placed by depth, grey edges, one coloured dot per stream; a depth summary for big graphs."""
    if dataflow_is_summary(graph):
        return _depth_summary_figure(graph)
    n, s = graph.n_nodes, graph.n_streams
    rows, cols, _ = graph.edge_list()
    lay = graph.layout()
    fig = go.Figure()
    ex, ey = [], []
    for i, j in zip(rows.tolist(), cols.tolist()):
        ex += [lay.x[j], lay.x[i], None]
        ey += [lay.y[j], lay.y[i], None]
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="rgba(150,150,150,0.45)", width=1),
                             hoverinfo="skip", name="edges", showlegend=False))
    spread = min(0.12, 0.6 / s)
    names, codes, runs = graph.vocabulary, graph.layer_codes, graph.runs
    equations = graph.dataflow()
    for k in range(s):
        color = STREAM_COLORS[k % len(STREAM_COLORS)]
        text = [names[c] if r else "–" for c, r in zip(codes[:, k].tolist(), runs[:, k].tolist())]
        symbols = ["circle" if r else "circle-open" for r in runs[:, k].tolist()]
        fig.add_trace(go.Scatter(
            x=lay.x + (k - (s - 1) / 2) * spread, y=lay.y, mode="markers+text" if n <= 120 else "markers",
            name=f"stream {k + 1}", text=text, textfont=dict(color="white", size=10), textposition="middle center",
            marker=dict(size=17 if n <= 120 else 9, color=color, symbol=symbols, line=dict(width=1.5, color=color)),
            customdata=np.array([[graph.labels[i], equations[i]] for i in range(n)], dtype=object),
            hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]}<extra>" + f"stream {k + 1}</extra>"))
    if n <= 60:
        fig.add_trace(go.Scatter(x=lay.x, y=lay.y + 0.42, mode="text", text=list(graph.labels), hoverinfo="skip",
                                 textfont=dict(size=11, color="#333"), showlegend=False, name="labels"))
    per_level = int(np.bincount(lay.depth).max())
    fig.update_layout(height=min(1000, max(320, 46 * per_level + 120)), margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.06, x=0), plot_bgcolor="white")
    fig.update_xaxes(title="depth (nodes at the same depth can run in parallel)", dtick=1, showgrid=False,
                     zeroline=False)
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
    """One line per model from points or job events (``{"model", "step", y, ...}``)."""
    fig = go.Figure()
    by: dict[str, tuple[list, list]] = {}
    for ev in points:
        if "model" in ev and x in ev and y in ev and ev[y] is not None and math.isfinite(float(ev[y])):
            xs, ys = by.setdefault(ev["model"], ([], []))
            xs.append(ev[x])
            ys.append(ev[y])
    for name, (xs, ys) in by.items():
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 30 else "lines", name=name,
                                 line=dict(color=MODEL_COLORS.get(name))))
    fig.update_layout(title=title, height=300, margin=dict(l=10, r=10, t=40, b=10), xaxis_title=x,
                      yaxis_title=y.replace("_", " "), legend=dict(orientation="h", y=-0.25))
    return fig
