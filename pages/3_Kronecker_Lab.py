"""Kronecker lab: grow a self-similar layer graph from a small lower-triangular matrix, see it, and train it.

The page is thin: it reads the base matrix, names, power and optional second graph into an
``engine.kronecker.KronSpec`` (the same object the CLI and the URL use), asks the engine for the grown
``KronGraph`` and draws what it returns. The Train tab wraps that spec in ``engine.kronecker_net.KronTrainSpec``
and runs it as a background ``kron_train`` job; results are read from the job's result folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import scipy.sparse as sp
import streamlit as st

import ui
from engine import kronecker as kr
from engine.kronecker import PRESETS, STREAM_COLORS, KronGraph, KronSpec

st.set_page_config(page_title="Kronecker lab · Fractal Lab", page_icon="🔷", layout="wide")

HEATMAP_CELLS = 256  # graphs above this many nodes are drawn as blocks (with a note saying so)
DRAW_NODES = 250  # above this many nodes (or DRAW_EDGES edges) the data flow is drawn as a depth summary
DRAW_EDGES = 5000
EQUATIONS_PER_PAGE = 40
STREAM_TEXT_CHARS = 2000
STREAM_STRIP_NODES = 2048
SECOND_LETTERS = "xyzwuvtsrqponmlk"
CUSTOM = "(custom)"

# ----------------------------------------------------------------------------------------------------------------
# state: the URL is read once per session; the editors' source tables live in session_state
# ----------------------------------------------------------------------------------------------------------------


def _second_preset(name: str) -> tuple[list[list[float]], list[str]]:
    """A preset used as the second graph, renamed x, y, z... so its layers differ from the base's."""
    p = PRESETS[name]
    return [list(r) for r in p.matrix], list(SECOND_LETTERS[: len(p.names)])


def _matching_preset(matrix, names, second: bool = False) -> str:
    for name, p in PRESETS.items():
        want_names = list(SECOND_LETTERS[: len(p.names)]) if second else list(p.names)
        try:
            if np.array_equal(np.asarray(matrix, dtype=float), np.asarray(p.matrix, dtype=float)) and \
                    list(names) == want_names:
                return name
        except (TypeError, ValueError):
            pass
    return CUSTOM


def _square_or_none(text: str) -> tuple[list[list[float]] | None, str | None]:
    """Read a matrix from link text for an editor: None plus the reason when it is not a square table."""
    try:
        m = kr.parse_matrix(text)
    except ValueError as exc:
        return None, str(exc)
    n = len(m)
    if n == 0 or any(not isinstance(r, list) or len(r) != n for r in m):
        return None, f"base: must be square ({n} rows need {n} columns each)"
    if n > kr.MAX_BASE_NODES:
        return None, f"base: has {n} nodes; allowed 1..{kr.MAX_BASE_NODES}"
    for i, row in enumerate(m):
        for j, v in enumerate(row):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                return None, f"base: entry at row {i + 1}, column {j + 1} is {v!r}; all entries must be numbers"
    return m, None


def _init_state() -> None:
    if st.session_state.get("kr_init"):
        return
    qp = st.query_params
    notes: list[str] = []
    base, names = [list(r) for r in PRESETS["example"].matrix], list(PRESETS["example"].names)
    if "base" in qp:
        m, err = _square_or_none(qp["base"])
        if m is None:
            notes.append(f"Link parameter ignored — {err}")
        else:
            base = m
            names = list(kr.parse_names(qp["names"])) if "names" in qp else list(kr.default_names(len(m)))
            if len(names) != len(m):  # keep the editor square; the engine's message still says what was wrong
                notes.append(f"Link parameter names: got {len(names)} names for {len(m)} nodes")
                names = (names + list(kr.default_names(len(m))))[: len(m)]
    power = 2
    if "power" in qp:
        try:
            power = int(qp["power"])
        except ValueError:
            notes.append(f"Link parameter power ignored: {qp['power']!r} is not an integer")
        power = min(max(power, 1), kr.MAX_POWER)
    second, second_names = _second_preset("two-node")
    use_second = False
    if "second" in qp:
        m, err = _square_or_none(qp["second"])
        if m is None:
            notes.append(f"Link parameter ignored — second: {err}")
        else:
            use_second = True
            second = m
            second_names = (list(kr.parse_names(qp["second_names"])) if "second_names" in qp
                            else list(SECOND_LETTERS[: len(m)]))
            second_names = (second_names + list(SECOND_LETTERS))[: len(m)]
    ss = st.session_state
    ss.kr_src, ss.kr_ver, ss.kr_n = {"base": base, "names": names}, 0, len(base)
    ss.kr2_src, ss.kr2_ver, ss.kr2_n = {"base": second, "names": second_names}, 0, len(second)
    ss.kr_preset = _matching_preset(base, names)
    ss.kr2_preset = _matching_preset(second, second_names, second=True)
    ss.kr_power, ss.kr_use2 = power, use_second
    ss.kr_link_notes = notes
    ss.kr_init = True


def _set_source(prefix: str, base, names) -> None:
    ss = st.session_state
    ss[f"{prefix}_src"] = {"base": [list(r) for r in base], "names": list(names)}
    ss[f"{prefix}_ver"] += 1
    ss[f"{prefix}_n"] = len(base)
    ss[f"{prefix}_preset"] = _matching_preset(base, names, second=prefix == "kr2")


def _on_preset(prefix: str) -> None:
    name = st.session_state[f"{prefix}_preset"]
    if name == CUSTOM:
        return
    if prefix == "kr2":
        _set_source(prefix, *_second_preset(name))
    else:
        p = PRESETS[name]
        _set_source(prefix, [list(r) for r in p.matrix], list(p.names))


def _on_resize(prefix: str) -> None:
    """Grow or shrink the editor table, keeping the top-left block; new nodes run a layer and read the last."""
    ss = st.session_state
    n = int(ss[f"{prefix}_n"])
    cur = ss.get(f"{prefix}_cur") or ss[f"{prefix}_src"]
    old, names = cur["base"], list(cur["names"])
    m = [[(old[i][j] if i < len(old) and j < len(old) else 0.0) for j in range(n)] for i in range(n)]
    letters = SECOND_LETTERS if prefix == "kr2" else "abcdefghijklmnop"
    for i in range(len(old), n):
        m[i][i] = 1.0
        if i > 0:
            m[i][i - 1] = 1.0
        names.append(next((c for c in letters if c not in names), f"L{i + 1}"))
    _set_source(prefix, m, names[:n])


def _on_paste() -> None:
    ss = st.session_state
    ss.kr_paste_error = None
    try:
        m = kr.parse_matrix(ss.get("kr_paste", ""))
        text = ss.get("kr_paste_names", "").strip()
        names = list(kr.parse_names(text)) if text else list(kr.default_names(len(m)))
        KronSpec(base=m, names=names, power=1)  # the engine's validation, with its own messages
    except ValueError as exc:
        ss.kr_paste_error = str(exc)
        return
    _set_source("kr", m, names)


def _matrix_editor(prefix: str) -> tuple[list[list[float | None]], list[str | None]]:
    """The base (or second) matrix and layer names in one table; returns what the table holds now."""
    ss = st.session_state
    src = ss[f"{prefix}_src"]
    n = len(src["base"])
    cols = [f"X{j + 1}" for j in range(n)]
    df = pd.DataFrame([[float(v) if v is not None else None for v in row] for row in src["base"]],
                      columns=cols, index=cols, dtype=float)
    df.insert(0, "layer", list(src["names"]))
    config = {"layer": st.column_config.TextColumn("layer", help="the layer this node runs", max_chars=16)}
    for j, c in enumerate(cols):
        config[c] = st.column_config.NumberColumn(c, help=f"weight of node X{j + 1} in each row's input sum "
                                                  "(diagonal: run this row's layer if non-zero)")
    edited = st.data_editor(df, key=f"{prefix}_editor_{ss[f'{prefix}_ver']}", column_config=config,
                            num_rows="fixed", width="content")
    values = edited[cols].to_numpy(dtype=float, na_value=np.nan)
    matrix = [[None if math.isnan(v) else float(v) for v in row] for row in values]
    names = [None if (x is None or (isinstance(x, float) and math.isnan(x))) else str(x).strip()
             for x in edited["layer"].tolist()]
    ss[f"{prefix}_cur"] = {"base": [[0.0 if v is None else v for v in r] for r in matrix], "names": names}
    return matrix, names


@st.cache_resource(max_entries=6, show_spinner="Growing the graph…")
def _graph(spec_json: str) -> KronGraph:
    return KronSpec.from_json(spec_json).build()


# ----------------------------------------------------------------------------------------------------------------
# drawing
# ----------------------------------------------------------------------------------------------------------------


def _range_label(labels, a: int, b: int) -> str:
    return f"X{a + 1} {labels[a]}" if a == b else f"X{a + 1}–X{b + 1} {labels[a]}…{labels[b]}"


def adjacency_figure(graph: KronGraph, weights: sp.spmatrix | None = None, title: str | None = None,
                     colorbar: str = "weight") -> tuple[go.Figure, str | None]:
    """The adjacency (or ``weights`` on its pattern) as a heatmap; big graphs as blocks, with the note to show.

    Rows and columns are categorical axes named by node (or node range), so the hover says which nodes a cell
    joins without shipping one hover string per cell.
    """
    n = graph.n_nodes
    labels = graph.labels
    mat = graph.adjacency if weights is None else sp.csr_matrix(weights)
    note = None
    if n <= HEATMAP_CELLS:
        dense = mat.toarray()
        mask = graph.adjacency.toarray() != 0 if weights is None else dense != 0
        z = np.where(mask, dense, np.nan)
        names = [f"X{i + 1} {labels[i]}" for i in range(n)]
        finite = z[np.isfinite(z)]
        lo, hi = (min(0.0, float(finite.min())), max(float(finite.max()), 1e-9)) if finite.size else (0.0, 1.0)
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
        if weights is None:
            z, starts = graph.blocks(HEATMAP_CELLS)
            z = np.where(z > 0, z, np.nan)
            what = "share of non-zero entries in the block"
        else:
            _, starts = graph.blocks(HEATMAP_CELLS)
            f = int(starts[1] - starts[0])
            m = len(starts)
            coo = mat.tocoo()
            sums = sp.coo_matrix((coo.data, (coo.row // f, coo.col // f)), shape=(m, m)).toarray()
            cnt = sp.coo_matrix((np.ones_like(coo.data), (coo.row // f, coo.col // f)), shape=(m, m)).toarray()
            z = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
            what = "mean weight of the block's edges"
        f = int(starts[1] - starts[0]) if len(starts) > 1 else n
        ends = np.minimum(starts + f, n) - 1
        names = [_range_label(labels, int(a), int(b)) for a, b in zip(starts, ends)]
        finite = z[np.isfinite(z)]
        lo, hi = (min(0.0, float(finite.min())), max(float(finite.max()), 1e-9)) if finite.size else (0.0, 1.0)
        fig = go.Figure(go.Heatmap(z=z, x=names, y=names, colorscale="Viridis", zmin=lo, zmax=hi,
                                   colorbar_title="density" if weights is None else colorbar,
                                   hovertemplate="rows %{y}<br>columns %{x}<br>%{z:.3g}<extra></extra>"))
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
        note = (f"Downsampled for drawing: {n:,} nodes shown as {len(starts)}×{len(starts)} blocks of {f}×{f} nodes "
                f"(colour = {what}). Nothing is cut off; the downloads hold every entry.")
    fig.update_yaxes(autorange="reversed", title="row (reads)", showgrid=False)
    fig.update_xaxes(title="column (is read)", side="top", showgrid=False)
    size = 560 if n > 12 else 400
    fig.update_layout(height=size, margin=dict(l=10, r=10, t=40 if not title else 70, b=10), title=title)
    return fig, note


def dataflow_figure(graph: KronGraph) -> tuple[go.Figure, str | None]:
    """Nodes placed by depth, grey edges, one coloured dot per stream; a depth summary for big graphs."""
    n, s = graph.n_nodes, graph.n_streams
    rows, cols, _ = graph.edge_list()
    if n > DRAW_NODES or len(rows) > DRAW_EDGES:
        counts, edges = graph.depth_summary()
        into = np.zeros(len(counts), dtype=np.int64)
        for (_a, b), c in edges.items():
            into[b] += c
        fig = go.Figure(go.Bar(
            x=np.arange(len(counts)), y=counts, marker_color=STREAM_COLORS[0],
            customdata=np.stack([into], axis=1),
            hovertemplate="depth %{x}: %{y:,} nodes<br>%{customdata[0]:,} edges arrive here<extra></extra>"))
        fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="depth (sequential step)",
                          yaxis_title="nodes at this depth", bargap=0.15)
        note = (f"{n:,} nodes and {len(rows):,} edges are too many to draw one by one (limit {DRAW_NODES} nodes, "
                f"{DRAW_EDGES:,} edges): this is the layered summary, nodes counted per depth. The data-flow PNG "
                "download draws the same summary with the edges between depths.")
        return fig, note
    lay = graph.layout()
    fig = go.Figure()
    ex, ey = [], []
    for i, j in zip(rows.tolist(), cols.tolist()):
        ex += [lay.x[j], lay.x[i], None]
        ey += [lay.y[j], lay.y[i], None]
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="rgba(150,150,150,0.45)", width=1),
                             hoverinfo="skip", name="edges", showlegend=False))
    spread = min(0.12, 0.6 / s)
    names = graph.vocabulary
    codes, runs = graph.layer_codes, graph.runs
    equations = graph.dataflow()
    for k in range(s):
        color = STREAM_COLORS[k % len(STREAM_COLORS)]
        dx = (k - (s - 1) / 2) * spread
        text = [names[c] if r else "–" for c, r in zip(codes[:, k].tolist(), runs[:, k].tolist())]
        symbols = ["circle" if r else "circle-open" for r in runs[:, k].tolist()]
        fig.add_trace(go.Scatter(
            x=lay.x + dx, y=lay.y, mode="markers+text" if n <= 120 else "markers", name=f"stream {k + 1}",
            text=text, textfont=dict(color="white", size=10), textposition="middle center",
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
    palette = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6",
               "#9D755D", "#BAB0AC"]
    k = max(len(names), 1)
    scale = []
    for i in range(k):
        c = palette[i % len(palette)]
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


def _compact(v: int) -> str:
    """A metric that fits its column: ``6,561`` stays, ``1,673,055`` becomes ``1.67 M``, huge ints ``2.92e+13``."""
    if abs(v) < 100_000:
        return f"{v:,}"
    if abs(v) < 10**9:
        return f"{v / 10**6:.3g} M" if abs(v) >= 10**6 else f"{v / 10**3:.3g} k"
    return f"{float(v):.3g}"


# ----------------------------------------------------------------------------------------------------------------
# page: setup
# ----------------------------------------------------------------------------------------------------------------

_init_state()
ss = st.session_state

st.title("Kronecker lab")
st.caption(
    "A small network is a lower-triangular matrix: the diagonal means *run this layer*, entries below it are "
    "inputs (weighted and summed). Kronecker-multiplying the matrix with itself grows a self-similar graph whose "
    "nodes are tuples of the base layers — node `ab` runs `a` on stream 1 and `b` on stream 2 — so a few layers "
    "make many computational steps."
)
for note in ss.get("kr_link_notes") or []:
    st.warning(note)

setup_left, setup_right = st.columns([3, 2], gap="large")
with setup_left:
    st.subheader("Base graph")
    c1, c2 = st.columns([2, 1])
    c1.selectbox("Preset", list(PRESETS) + [CUSTOM], key="kr_preset", on_change=_on_preset, args=("kr",),
                 help="; ".join(f"{k}: {p.about}" for k, p in PRESETS.items()))
    c2.number_input("Nodes", 1, kr.MAX_BASE_NODES, key="kr_n", on_change=_on_resize, args=("kr",))
    base_matrix, base_names = _matrix_editor("kr")
    _now = _matching_preset(base_matrix, base_names)
    if _now != ss.kr_preset:
        st.caption(f"Edited: this is now {'the ' + repr(_now) + ' preset' if _now != CUSTOM else 'a custom graph'}.")
    with st.expander("Paste a matrix"):
        st.text_area("Matrix (JSON rows or `1 0; 1 1`)", key="kr_paste", height=90,
                     placeholder="[[1,0,0],[1,1,0],[1,1,1]]")
        st.text_input("Layer names", key="kr_paste_names", placeholder="abc  or  conv,mlp,attn")
        st.button("Apply", key="kr_paste_apply", on_click=_on_paste)
        if ss.get("kr_paste_error"):
            st.error(ss.kr_paste_error)
with setup_right:
    st.subheader("Grow it")
    st.number_input("Kronecker power k (base ⊗ base ⊗ … k times)", 1, kr.MAX_POWER, key="kr_power")
    st.checkbox("Then multiply by a second graph (multi-fractal)", key="kr_use2")
    second_matrix = second_names = None
    if ss.kr_use2:
        d1, d2 = st.columns([2, 1])
        d1.selectbox("Second graph preset", list(PRESETS) + [CUSTOM], key="kr2_preset", on_change=_on_preset,
                     args=("kr2",))
        d2.number_input("Nodes", 1, kr.MAX_BASE_NODES, key="kr2_n", on_change=_on_resize, args=("kr2",))
        second_matrix, second_names = _matrix_editor("kr2")

try:
    spec = KronSpec(base=base_matrix, names=base_names, power=int(ss.kr_power),
                    second=second_matrix, second_names=second_names)
except ValueError as exc:
    st.error(f"**This graph cannot be built.** {exc}")
    st.stop()

ui.write_query_params(
    {"base": [list(r) for r in spec.base], "names": ",".join(spec.names), "power": spec.power,
     "second": [list(r) for r in spec.second] if spec.second is not None else None,
     "second_names": ",".join(spec.second_names) if spec.second_names is not None else None},
    defaults={"second": None, "second_names": None},
)

graph = _graph(spec.to_json())
stats = graph.stats()

st.markdown(f"#### Graph `{spec.describe()}`")
m = st.columns(7)
m[0].metric("Nodes", _compact(stats.nodes))
m[1].metric("Edges", _compact(stats.edges), help="non-zero entries below the diagonal")
m[2].metric("Streams", stats.streams)
m[3].metric("Applications", _compact(stats.layer_applications),
            help="layer applications: one per (node, stream) that runs its layer")
m[4].metric("Layers", stats.distinct_layers, help="distinct layers applied (what a tied network learns)")
m[5].metric("Longest path", _compact(stats.longest_path),
            help="nodes on the longest input-to-output path: the sequential depth")
m[6].metric("Paths", _compact(stats.paths), help="input-to-output paths, counted exactly (see below)")
if any(len(f"{v:,}") > 7 for v in (stats.nodes, stats.edges, stats.layer_applications, stats.paths)):
    st.caption(f"Exact: {stats.nodes:,} nodes · {stats.edges:,} edges · {stats.layer_applications:,} layer "
               f"applications · {stats.paths:,} input-to-output paths.")


def _json_bytes() -> bytes:
    return graph.to_json().encode()


npy_name = "adjacency.npy" if graph.n_nodes <= kr.DENSE_EXPORT_LIMIT else "adjacency_coo.npy"
csv_name = "adjacency.csv" if graph.n_nodes <= kr.DENSE_EXPORT_LIMIT else "adjacency_coo.csv"
ui.download_row(
    {
        npy_name: (lambda: kr.adjacency_npy(graph)[1], "application/octet-stream"),
        csv_name: (lambda: kr.adjacency_csv(graph)[1], "text/csv"),
        "graph.json": (_json_bytes, "application/json"),
        "dataflow.png": (lambda: kr.dataflow_png(graph, max_nodes=DRAW_NODES, max_edges=DRAW_EDGES), "image/png"),
        "adjacency.png": (lambda: kr.adjacency_png(graph), "image/png"),
    },
    key="kr",
)
if graph.n_nodes > kr.DENSE_EXPORT_LIMIT:
    st.caption(f"Above {kr.DENSE_EXPORT_LIMIT:,} nodes the adjacency downloads are sparse triples "
               "(row, column, weight; counted from 0) rather than a dense matrix.")

tab_adj, tab_flow, tab_eq, tab_streams, tab_train = st.tabs(
    ["Adjacency", "Data flow", "Equations", "Streams", "Train"])

with tab_adj:
    fig, note = adjacency_figure(graph)
    if note:
        st.info(note)
    st.plotly_chart(fig, key="kr_adjacency", width="stretch")
    if graph.n_nodes <= 12:
        st.caption("Label matrix: entry (i, j) is node j's label where the adjacency is non-zero.")
        lm = graph.label_matrix()
        idx = [f"X{i + 1}" for i in range(graph.n_nodes)]
        st.dataframe(pd.DataFrame(lm, index=idx, columns=idx), key="kr_label_matrix")

with tab_flow:
    fig, note = dataflow_figure(graph)
    if note:
        st.info(note)
    st.plotly_chart(fig, key="kr_dataflow", width="stretch")
    if not note:
        st.caption("Filled dot: that stream runs its layer at this node; open dot: it passes its summed input on. "
                   "Hover a dot for the node's equation.")

with tab_eq:
    n_pages = max(1, math.ceil(graph.n_nodes / EQUATIONS_PER_PAGE))
    if n_pages > 1:
        q1, q2 = st.columns([1, 3])
        page_no = q1.number_input(f"Page (of {n_pages:,})", 1, n_pages, 1, key="kr_eq_page")
    else:
        page_no = 1
    start = (int(page_no) - 1) * EQUATIONS_PER_PAGE
    stop = min(start + EQUATIONS_PER_PAGE, graph.n_nodes)
    st.caption(f"Equations X{start + 1}–X{stop} of {graph.n_nodes:,} (in execution order).")
    st.code("\n".join(graph.dataflow(start, stop)), language=None, wrap_lines=True)

with tab_streams:
    st.caption("The layer sequence each stream runs along the diagonal (`-` = passes its input through).")
    for k, text in enumerate(graph.streams()):
        shown = text if len(text) <= STREAM_TEXT_CHARS else text[:STREAM_TEXT_CHARS]
        st.markdown(f"**Stream {k + 1}**" + (f" — first {STREAM_TEXT_CHARS:,} of {len(text):,} characters"
                                             if len(text) > STREAM_TEXT_CHARS else ""))
        st.code(shown, language=None, wrap_lines=True)
    fig, note = streams_figure(graph)
    if note:
        st.caption(note)
    st.plotly_chart(fig, key="kr_streams", width="stretch")


# ----------------------------------------------------------------------------------------------------------------
# page: train
# ----------------------------------------------------------------------------------------------------------------

MODEL_COLORS = {"kron_tied": "#0072B2", "kron_untied": "#009E73", "base": "#E69F00", "sequential": "#CC79A7"}


def grouped_curves(events, y: str, title: str, x: str = "step") -> go.Figure:
    """One line per model from job events (``{"model", "step", y, ...}``)."""
    fig = go.Figure()
    by: dict[str, tuple[list, list]] = {}
    for ev in events:
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


TRAIN_DEFAULTS = {"task": "digits", "block": "mlp", "tied": True, "edges": "none", "combine": "mean",
                  "width": 32, "heads": 2, "epochs": 5, "lr": 0.003, "batch": 64, "seed": 0,
                  "baselines": "base,sequential,untied"}


def _train_tab() -> None:
    try:
        from engine import kronecker_net as kn
    except Exception as exc:  # noqa: BLE001 - shown to the user instead of a traceback
        st.error(f"Training is not available: engine.kronecker_net could not be imported ({exc}).")
        return
    import runs
    from cache import default_store

    if not ss.get("kt_init"):
        errors: list[str] = []
        q = ui.read_query_params(TRAIN_DEFAULTS, prefix="t_", errors=errors)
        for key, value in q.items():
            ss[f"kt_{key}"] = value
        ss.kt_baselines = [b for b in str(q["baselines"]).split(",") if b in kn.BASELINES]
        ss.kt_link_errors = errors
        ss.kt_init = True
    for err in ss.get("kt_link_errors") or []:
        st.warning(f"Ignored link parameter {err}")

    st.markdown(
        "Train the graph above as a network beside fair baselines: the **base graph alone** (same layers, fewer "
        "applications), a **plain sequential stack** as deep as one stream with its width matched to the tied "
        "net's parameters, and the **untied** Kronecker net (one layer per node and stream)."
    )
    tasks = list(kn.TASKS)
    c = st.columns(4)
    task = c[0].selectbox("Task", tasks, key="kt_task", format_func=lambda t: f"{t} — {kn.TASKS[t].description}")
    c[1].selectbox("Block", list(kn.BLOCKS), key="kt_block",
                   help=f"digits usually uses '{kn.TASKS['digits'].default_block}', "
                        f"sort '{kn.TASKS['sort'].default_block}'" if "sort" in kn.TASKS else None)
    c[2].selectbox("Edge weights", list(kn.EDGE_WEIGHTS), key="kt_edges",
                   help="none: the adjacency values; static: learned scalars; dynamic: a gate per example/token")
    c[3].selectbox("Combine streams", list(kn.COMBINES), key="kt_combine")
    c = st.columns(6)
    c[0].number_input("Width", 4, 1024, key="kt_width")
    c[1].number_input("Heads", 1, 64, key="kt_heads", disabled=ss.kt_block != "transformer")
    c[2].number_input("Epochs", 1, 1000, key="kt_epochs")
    c[3].number_input("Learning rate", 1e-5, 1.0, key="kt_lr", format="%.4g", step=0.001)
    c[4].number_input("Batch size", 1, 4096, key="kt_batch")
    c[5].number_input("Seed", 0, 2**31 - 1, key="kt_seed")
    c = st.columns([1, 3])
    c[0].checkbox("Tied (reuse the base layers)", key="kt_tied")
    c[1].multiselect("Baselines", list(kn.BASELINES), key="kt_baselines")

    try:
        tspec = kn.KronTrainSpec(
            graph=spec, task=task, block=ss.kt_block, tied=bool(ss.kt_tied), edge_weights=ss.kt_edges,
            combine=ss.kt_combine, width=int(ss.kt_width), heads=int(ss.kt_heads), epochs=int(ss.kt_epochs),
            lr=float(ss.kt_lr), batch_size=int(ss.kt_batch), seed=int(ss.kt_seed),
            baselines=tuple(ss.kt_baselines))
    except ValueError as exc:
        st.error(f"**Cannot train this setup.** {exc}")
        return
    ui.write_query_params(
        {"task": tspec.task, "block": tspec.block, "tied": tspec.tied, "edges": tspec.edge_weights,
         "combine": tspec.combine, "width": tspec.width, "heads": tspec.heads, "epochs": tspec.epochs,
         "lr": tspec.lr, "batch": tspec.batch_size, "seed": tspec.seed, "baselines": ",".join(tspec.baselines)},
        prefix="t_", defaults=TRAIN_DEFAULTS)

    job_id = default_store().key("kron_train", tspec)
    status = runs.status(job_id)
    state = getattr(status, "state", None)
    st.caption(f"Models: {', '.join(tspec.model_names())} · job `{job_id}`")
    if state is None or state in ("failed", "cancelled"):
        if st.button("▶ Train", key="kt_train", type="primary"):
            ss.kt_job = runs.submit("kron_train", tspec)
            st.rerun()
    if state is None:
        st.info("Not trained yet with these settings. Training runs as a background job: you can leave the page "
                "and come back, or open the Runs page.")
        return

    def _live(stat) -> None:
        events = runs.events(job_id)
        if not events:
            st.caption("Waiting for the first training steps (loading data, building the models)…")
            return
        a, b = st.columns(2)
        a.plotly_chart(grouped_curves(events, "loss", "training loss (per batch)"), key="kt_live_loss",
                       width="stretch")
        b.plotly_chart(grouped_curves(events, "test_accuracy", "test accuracy (per epoch)", x="epoch"),
                       key="kt_live_acc", width="stretch")

    if state in ("queued", "running"):
        ui.live_job_fragment(job_id, key="kt", title="Training", extra=_live)
        return
    ui.job_progress_panel(job_id, key="kt_done", cancellable=False)
    if state != "done":
        return
    out = runs.result_dir(job_id)
    if out is None:
        return
    summary = json.loads((Path(out) / "summary.json").read_text())
    table = pd.DataFrame(summary["table"])
    st.markdown(f"**Results** — {summary.get('metric', 'test accuracy')}")
    show = [c for c in ("model", "parameters", "layer_applications", "sequential_steps", "width",
                        "test_accuracy", "final_train_loss", "train_time_s", "description") if c in table]
    st.dataframe(table[show], hide_index=True, key="kt_table",
                 column_config={"test_accuracy": st.column_config.NumberColumn(format="%.4f"),
                                "train_time_s": st.column_config.NumberColumn("time (s)", format="%.1f")})
    curves = [p for pts in summary.get("curves", {}).values() for p in pts]
    tests = [p for pts in summary.get("test_curves", {}).values() for p in pts]
    a, b = st.columns(2)
    a.plotly_chart(grouped_curves(curves, "loss", "training loss (per batch)"), key="kt_loss", width="stretch")
    b.plotly_chart(grouped_curves(tests, "test_accuracy", "test accuracy (per epoch)", x="epoch"), key="kt_acc",
                   width="stretch")
    ew = summary.get("edge_weights") or {}
    if ew:
        pick = st.selectbox("Edge weights of", list(ew), key="kt_ew_model")
        e = ew[pick]
        n_nodes = int(e.get("nodes", graph.n_nodes))
        draw_graph = graph if n_nodes == graph.n_nodes else spec.base_graph()
        if len(e["rows"]):
            w = sp.coo_matrix((np.asarray(e["weights"], float), (e["rows"], e["cols"])), shape=(n_nodes, n_nodes))
            fig, note = adjacency_figure(draw_graph, weights=w, colorbar="weight",
                                         title=f"{pick}: edge weights ({e.get('kind')})")
            if note:
                st.caption(note)
            st.plotly_chart(fig, key="kt_edge_weights", width="stretch")
            if e.get("kind") == "dynamic":
                st.caption("Dynamic gate: mean weight over the test set (each node's incoming weights sum to 1 "
                           "per example).")
        else:
            st.caption(f"{pick} has no edges to weight.")
    out = Path(out)
    results = {name: ((out / name).read_bytes(), mime) for name, mime in
               (("results.csv", "text/csv"), ("curves.csv", "text/csv"), ("summary.json", "application/json"),
                ("spec.json", "application/json")) if (out / name).exists()}
    checkpoints = {p.name: (p.read_bytes, "application/octet-stream")  # read only when clicked
                   for p in sorted(out.glob("checkpoint_*.safetensors"))}
    st.markdown("**Downloads** — results, then one checkpoint per model (safetensors `state_dict`; load it into "
                "`engine.kronecker_net.build_models(spec)[model]`)")
    ui.download_row(results, key="kt_results")
    ui.download_row(checkpoints, key="kt_ckpt",
                    labels={n: "⬇ " + n.removeprefix("checkpoint_").removesuffix(".safetensors") for n in checkpoints})


with tab_train:
    _train_tab()
