"""The picture of one fractal block, drawn from ``block_structure`` (the layout the module itself runs), so the
diagram can never disagree with the network.
"""

from __future__ import annotations

import plotly.graph_objects as go

from engine.fractalnet.charts import COLUMN_COLORS  # the one palette: column k has one colour on every chart


def block_figure(s: dict) -> go.Figure:
    """A diagram of one fractal block drawn from ``block_structure`` (the layout the module itself runs).

    Columns left (shallowest) to right (deepest), depth downwards; each conv box sits between the depth
    positions it reads from and writes to, joins are bars across the columns they merge, and the last join
    comes after every column's 2x2 max-pooling.
    """
    C, depth = s["columns"], s["depth"]
    convs = {c["id"]: c for c in s["convs"]}
    join_at = {j["position"]: j for j in s["joins"]}
    last_y = depth + 0.7

    def period(c: int) -> int:
        return 2 ** (C - 1 - c)

    def conv_xy(cv: dict) -> tuple[float, float]:
        return cv["column"], cv["position"] - period(cv["column"]) / 2

    ex: list = []
    ey: list = []

    def edge(a, b):
        ex.extend([a[0], b[0], None])
        ey.extend([a[1], b[1], None])

    for cv in s["convs"]:
        x, y = conv_xy(cv)
        src = cv["input"]
        if src == "input":
            edge((x, 0), (x, y))
        elif src.startswith("join"):
            edge((x, int(src[4:])), (x, y))
        else:
            edge(conv_xy(convs[src]), (x, y))
        p = cv["position"]
        if p == depth:
            edge((x, y), (x, depth + 0.25))
            edge((x, depth + 0.25), (x, last_y))
        elif p in join_at and cv["column"] in join_at[p]["columns"]:
            edge((x, y), (x, p))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#9a9a9a", width=1.5), hoverinfo="skip",
                             showlegend=False))
    # block input bar
    fig.add_trace(go.Scatter(x=[-0.4, C - 0.6], y=[0, 0], mode="lines", line=dict(color="#444", width=4),
                             hoverinfo="skip", showlegend=False))
    fig.add_annotation(x=C - 0.55, y=0, text=f"input · {s['in_channels']} ch", showarrow=False, xanchor="left",
                       font=dict(size=11))
    # joins
    for j in s["joins"]:
        y = last_y if j["last"] else j["position"]
        xs = j["columns"]
        if len(xs) < 2 and not j["last"]:
            continue
        fig.add_trace(go.Scatter(
            x=[min(xs) - 0.3, max(xs) + 0.3], y=[y, y], mode="lines", line=dict(color="#111", width=6),
            hovertext=f"{j['id']}: mean of {len(j['inputs'])} input(s) {', '.join(j['inputs'])}", hoverinfo="text",
            showlegend=False,
        ))
        label = f"join ({len(xs)} inputs)" + (" → 2x2-pooled output" if j["last"] else "")
        fig.add_annotation(x=max(xs) + 0.35, y=y, text=label, showarrow=False, xanchor="left", font=dict(size=11))
    # pooling
    fig.add_trace(go.Scatter(
        x=list(range(C)), y=[depth + 0.25] * C, mode="markers", marker=dict(symbol="diamond", size=11,
                                                                            color="#555"),
        hovertext=["2x2 max-pool"] * C, hoverinfo="text", name="2x2 max-pool",
    ))
    # convs, one trace per column (the legend names columns)
    size = 24 if depth <= 8 else (16 if depth <= 16 else 10)
    for c in range(C):
        pts = [conv_xy(cv) for cv in s["convs"] if cv["column"] == c]
        ids = [cv["id"] for cv in s["convs"] if cv["column"] == c]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
            marker=dict(symbol="square", size=size, color=COLUMN_COLORS[c % len(COLUMN_COLORS)],
                        line=dict(color="white", width=1)),
            hovertext=[f"{i}: 3x3 conv-BN-ReLU → {s['out_channels']} ch" for i in ids], hoverinfo="text",
            name=f"column {c} ({2 ** c} conv{'s' if c else ''})",
        ))
    height = int(min(900, 170 + 62 * depth))
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="white",
        xaxis=dict(visible=False, range=[-0.7, C + 1.4]),
        yaxis=dict(visible=False, autorange="reversed"),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    return fig
