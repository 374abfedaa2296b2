"""What each picture of a graph shows, down to the pixel: described once, drawn twice.

The lab's page turns these descriptions into plotly figures (``ui/kronecker/figures.py``) and the downloads
render the very same descriptions with matplotlib (:mod:`engine.kronecker.export`), so a downloaded picture is
the chart on the page: the same dots, letters, colours, colour scale and thresholds.

Sizes are CSS pixels, as plotly takes them. A chart on the page stretches to its column, whose width the server
never learns, so the layout is computed for :data:`PLOT_WIDTH` (the narrowest plot area the lab's wide layout
gives a full-width chart) and only gets roomier on a wider screen: dots, letters and node names are sized or
left out so that none of them overlaps another at that width (the names stay in the hover text).

Example::

    from engine.kronecker import drawing
    from engine.kronecker.graph import KronGraph
    flow = drawing.dataflow_drawing(KronGraph([[1, 0, 0], [1, 1, 0], [1, 1, 1]], "abc").power(4))
    flow.dot_px, flow.letter_px, len(flow.names)   # dots shrink to fit; letters and names only where they fit
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from engine.kronecker.graph import KronGraph

# ------------------------------------------------------------------------------------------------- thresholds
#: Above this many nodes, a picture of the adjacency shows blocks of nodes (at most this many per side).
BLOCK_CELLS = 256
#: Above this many nodes or DRAW_EDGES edges, the data flow is drawn as its depth-level summary.
DRAW_NODES = 250
DRAW_EDGES = 5000
#: Up to this many nodes the adjacency's axes are labelled node by node.
TICK_LABEL_NODES = 40

# ---------------------------------------------------------------------------------------------------- palette
#: Stream colours (colour-blind-safe Okabe-Ito order).
STREAM_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")
#: The adjacency's colour scale, low to high: plotly's "Viridis" stops (matplotlib's viridis sampled ten times).
VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b",
           "#fde725")
#: One colour per model of a training comparison (Okabe-Ito, as the streams).
MODEL_COLORS = {"kron_tied": "#0072B2", "kron_untied": "#009E73", "base": "#E69F00", "sequential": "#CC79A7"}
OTHER_MODEL_COLOR = "#555555"
EDGE_RGBA = (150, 150, 150, 0.45)
SUMMARY_ARC_RGBA = (160, 160, 160, 0.7)
NAME_COLOR = "#333333"
BACKGROUND = "#ffffff"

# ---------------------------------------------------------------------------------------------------- geometry
PLOT_WIDTH = 720  # CSS px: a full-width chart's plot area at a 1,000-px-wide window with the sidebar open
MARGIN = (40, 20, 60, 60)  # left, right, top (legend and title), bottom (ticks and axis title), CSS px
ROW_PX = 46  # vertical room per node at the busiest depth, until MAX_HEIGHT
MIN_HEIGHT, MAX_HEIGHT = 320, 1000
DOT_PX = 17  # a stream's dot when there is room
MIN_DOT_PX = 4
DOT_GAP_PX = 2  # at least this much white between two dots
LETTER_PX = 10  # font size of the layer letter inside a dot
NAME_PX = 11  # font size of a node's name above its dots
CHAR_EM = 0.62  # the width of a character in em: generous for the sans fonts of plotly and matplotlib
LINE_EM = 1.2  # the height of a line of text in em
X_PAD = 0.6  # data units left of the first and right of the last depth


def text_size(text: str, font_px: float) -> tuple[float, float]:
    """The box a line of text takes, in CSS px (width, height): what the layout keeps free for it."""
    return CHAR_EM * font_px * len(text), LINE_EM * font_px


@dataclass(frozen=True)
class Frame:
    """A chart's canvas: figure size, margins and axis ranges; maps data coordinates to CSS px of the figure."""

    width: int
    height: int
    margin: tuple[int, int, int, int]
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    @property
    def plot_size(self) -> tuple[int, int]:
        l, r, t, b = self.margin
        return self.width - l - r, self.height - t - b

    def px_per_unit(self) -> tuple[float, float]:
        w, h = self.plot_size
        return w / (self.x_range[1] - self.x_range[0]), h / (self.y_range[1] - self.y_range[0])

    def to_px(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Figure pixels (origin top left) of data points ``(x, y)`` (y grows upwards in the data)."""
        sx, sy = self.px_per_unit()
        l, _r, t, _b = self.margin
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        return l + (x - self.x_range[0]) * sx, t + (self.y_range[1] - y) * sy


# ---------------------------------------------------------------------------------------------------- data flow
@dataclass(frozen=True)
class StreamDots:
    """One stream's dot at every node: filled where it runs its layer, open where it passes its input on."""

    stream: int
    color: str
    x: np.ndarray
    y: np.ndarray
    runs: np.ndarray
    letters: tuple[str, ...]  # the layer letter in each dot ("–" for a pass); empty when letters are left out


@dataclass(frozen=True)
class DataflowDrawing:
    """The layered data flow: grey edges, one dot per stream and node, names above the nodes where they fit."""

    frame: Frame
    title: str
    x_title: str
    levels: int  # depths 0 .. levels - 1 (the x ticks)
    edges_x: np.ndarray  # NaN separates one edge from the next
    edges_y: np.ndarray
    streams: tuple[StreamDots, ...]
    dot_px: float
    letter_px: float  # 0: no letters in the dots (they would not fit); the hover text names every node
    names: tuple[str, ...]  # one per node; empty when they would overlap
    names_x: np.ndarray
    names_y: np.ndarray
    labels: tuple[str, ...]  # every node's name (the page's hover)
    equations: tuple[str, ...]  # every node's equation (the page's hover)


def dataflow_is_summary(graph: KronGraph) -> bool:
    """True when the graph is too big to draw node by node (then the page and the PNG draw depth levels)."""
    return graph.n_nodes > DRAW_NODES or graph.n_edges > DRAW_EDGES


def _names_fit(labels, frame: Frame, dot: float, node_half_px: float) -> bool:
    """True when a name above every node keeps clear of every other name and dot at :data:`PLOT_WIDTH`."""
    sx, sy = frame.px_per_unit()
    w = max(text_size(x, NAME_PX)[0] for x in labels)
    h = text_size("x", NAME_PX)[1]
    return (sy >= dot + h + 2 * DOT_GAP_PX  # between a node's dots and the dots of the node above
            and w + DOT_GAP_PX <= sx  # beside the names one depth over
            and w / 2 + node_half_px + DOT_GAP_PX <= sx  # beside the dots one depth over
            and w / 2 <= X_PAD * sx)  # inside the plot at the first and last depth


def dataflow_drawing(graph: KronGraph, plot_width: int = PLOT_WIDTH) -> DataflowDrawing:
    """The data flow of a graph small enough to draw node by node (see :func:`dataflow_is_summary`)."""
    n, s = graph.n_nodes, graph.n_streams
    lay = graph.layout()
    levels = int(lay.depth.max()) + 1 if n else 1
    per_level = int(np.bincount(lay.depth).max()) if n else 1
    height = min(MAX_HEIGHT, max(MIN_HEIGHT, ROW_PX * per_level + 120))
    half = (per_level - 1) / 2
    l, r, t, b = MARGIN
    frame = Frame(l + plot_width + r, height, MARGIN, (-X_PAD, levels - 1 + X_PAD), (-half - 0.6, half + 0.6))
    sx, sy = frame.px_per_unit()
    spread = min(0.7 / s, 0.2) if s > 1 else 0.0  # data units between two streams' dots of one node
    pitch = spread * sx if s > 1 else math.inf
    dot = max(MIN_DOT_PX, min(DOT_PX, pitch - DOT_GAP_PX, sy - DOT_GAP_PX))
    vocab = graph.vocabulary
    widest = max(text_size(v, LETTER_PX)[0] for v in (*vocab, "–"))
    letters_fit = text_size("x", LETTER_PX)[1] <= dot and widest <= dot - 2
    codes, runs = graph.layer_codes, graph.runs
    streams = []
    for k in range(s):
        letters = tuple(vocab[c] if run else "–" for c, run in zip(codes[:, k].tolist(), runs[:, k].tolist()))
        streams.append(StreamDots(k, STREAM_COLORS[k % len(STREAM_COLORS)], lay.x + (k - (s - 1) / 2) * spread,
                                  lay.y.copy(), runs[:, k].copy(), letters if letters_fit else ()))
    rows, cols, _ = graph.edge_list()
    ex = np.full(3 * len(rows), np.nan)
    ey = np.full(3 * len(rows), np.nan)
    ex[0::3], ex[1::3] = lay.x[cols], lay.x[rows]
    ey[0::3], ey[1::3] = lay.y[cols], lay.y[rows]
    labels = graph.labels
    node_half = (s - 1) / 2 * spread * sx + dot / 2
    show_names = n > 0 and _names_fit(labels, frame, dot, node_half)
    lift = (dot / 2 + DOT_GAP_PX + text_size("x", NAME_PX)[1] / 2) / sy
    return DataflowDrawing(
        frame=frame, title=f"{n:,} nodes, {len(rows):,} edges, {s} stream{'s' if s != 1 else ''}",
        x_title="depth (nodes at the same depth can run in parallel)", levels=levels, edges_x=ex, edges_y=ey,
        streams=tuple(streams), dot_px=float(dot), letter_px=float(LETTER_PX if letters_fit else 0),
        names=tuple(labels) if show_names else (), names_x=lay.x.copy() if show_names else np.zeros(0),
        names_y=lay.y + lift if show_names else np.zeros(0), labels=tuple(labels),
        equations=tuple(graph.dataflow()))


# ----------------------------------------------------------------------------------------------- depth summary
@dataclass(frozen=True)
class SummaryDrawing:
    """A graph too big to draw node by node: a bar of nodes per depth, and arcs of the edges between depths
    (the farther an edge jumps, the higher its arc; arc width grows with the log of the edge count)."""

    frame: Frame
    title: str
    counts: np.ndarray
    bar_color: str
    bar_width: float  # data units
    arcs: tuple[tuple[int, int, int], ...]  # (from depth, to depth, edges), thinnest first (drawn below)
    arcs_x: tuple[np.ndarray, ...]
    arcs_y: tuple[np.ndarray, ...]
    arcs_px: tuple[float, ...]  # line widths


def summary_drawing(graph: KronGraph, plot_width: int = PLOT_WIDTH) -> SummaryDrawing:
    """The depth summary of a big graph (what the page and the PNG draw when :func:`dataflow_is_summary`)."""
    counts, edges = graph.depth_summary()
    levels = len(counts)
    top = max(int(counts.max()), 1)
    widest = math.log1p(max(edges.values())) if edges else 1.0
    l, r, t, b = MARGIN
    frame = Frame(l + 30 + plot_width + r, 480, (l + 30, r, t, b), (-0.6, levels - 1 + 0.6), (0.0, 1.9 * top))
    t_ = np.linspace(0.0, 1.0, 24)
    arcs, xs, ys, widths = [], [], [], []
    for (a, b_), c in sorted(edges.items(), key=lambda kv: (kv[1], kv[0])):
        lift = top * (0.15 + 0.7 * (b_ - a) / max(levels - 1, 1))
        arcs.append((a, b_, c))
        xs.append((1 - t_) * a + t_ * b_)
        ys.append((1 - t_) * counts[a] + t_ * counts[b_] + 4 * t_ * (1 - t_) * lift)
        widths.append(1.0 + 6.0 * math.log1p(c) / widest)
    return SummaryDrawing(
        frame=frame, counts=counts, bar_color=STREAM_COLORS[0], bar_width=0.7, arcs=tuple(arcs),
        arcs_x=tuple(xs), arcs_y=tuple(ys), arcs_px=tuple(widths),
        title=f"{graph.n_nodes:,} nodes, {graph.n_edges:,} edges: nodes per depth, arcs = edges between depths")


# ---------------------------------------------------------------------------------------------------- adjacency
@dataclass(frozen=True)
class AdjacencyPicture:
    """The adjacency (or weights on its pattern) at drawable size: ``values[a, b]`` is the entry, or for blocks
    the share of non-zero entries (no weights) or the mean edge weight; NaN where nothing is."""

    values: np.ndarray
    starts: np.ndarray
    factor: int
    nodes: int

    @property
    def downsampled(self) -> bool:
        return self.factor > 1

    def ends(self) -> np.ndarray:
        """The last node of each block."""
        return np.minimum(self.starts + self.factor, self.nodes) - 1


def adjacency_picture(graph: KronGraph, weights: sp.spmatrix | None = None,
                      max_cells: int = BLOCK_CELLS) -> AdjacencyPicture:
    """The adjacency as at most ``max_cells`` x ``max_cells`` cells, without densifying a big graph."""
    n = graph.n_nodes
    mat = graph.adjacency if weights is None else sp.csr_matrix(weights)
    density, starts = graph.blocks(max_cells)
    factor = int(starts[1] - starts[0]) if len(starts) > 1 else max(n, 1)
    if n <= max_cells:
        dense = mat.toarray()
        mask = graph.adjacency.toarray() != 0 if weights is None else dense != 0
        return AdjacencyPicture(np.where(mask, dense, np.nan), starts, 1, n)
    if weights is None:
        return AdjacencyPicture(np.where(density > 0, density, np.nan), starts, factor, n)
    m = len(starts)
    coo = mat.tocoo()
    where = (coo.row // factor, coo.col // factor)
    sums = sp.coo_matrix((coo.data, where), shape=(m, m)).toarray()
    count = sp.coo_matrix((np.ones_like(coo.data), where), shape=(m, m)).toarray()
    return AdjacencyPicture(np.where(count > 0, sums / np.maximum(count, 1), np.nan), starts, factor, n)


@dataclass(frozen=True)
class AdjacencyDrawing:
    """The adjacency (or weights on its pattern) as coloured cells: node by node, or blocks of nodes."""

    values: np.ndarray  # NaN where nothing is (drawn as background)
    names: tuple[str, ...]  # one per row/column: "X3 ac", or "X1–X27 aaa…acc" for a block
    ticks: tuple[str, ...]  # axis labels (node names) when few enough, else empty
    zmin: float
    zmax: float
    colorbar: str
    blocks: bool
    factor: int  # nodes per block side (1: node by node)
    height: int
    title: str | None


def value_range(values: np.ndarray) -> tuple[float, float]:
    """The colour scale's range of a picture: from 0 (or the lowest value, if negative) to the highest value."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    return min(0.0, float(finite.min())), max(float(finite.max()), 1e-9)


def adjacency_drawing(graph: KronGraph, weights: sp.spmatrix | None = None, title: str | None = None,
                      colorbar: str = "weight") -> AdjacencyDrawing:
    """What the adjacency chart (and ``adjacency.png``) shows; blocks above :data:`BLOCK_CELLS` nodes."""
    n, labels = graph.n_nodes, graph.labels
    pic = adjacency_picture(graph, weights)
    lo, hi = value_range(pic.values)
    if pic.downsampled:
        names = tuple(f"X{a + 1} {labels[a]}" if a == b else f"X{a + 1}–X{b + 1} {labels[a]}…{labels[b]}"
                      for a, b in zip(pic.starts.tolist(), pic.ends().tolist()))
        bar = "density" if weights is None else colorbar
    else:
        names, bar = tuple(f"X{i + 1} {labels[i]}" for i in range(n)), colorbar
    ticks = tuple(labels) if not pic.downsampled and n <= TICK_LABEL_NODES else ()
    return AdjacencyDrawing(values=pic.values, names=names, ticks=ticks, zmin=lo, zmax=hi, colorbar=bar,
                            blocks=pic.downsampled, factor=pic.factor, height=560 if n > 12 else 400, title=title)


# ------------------------------------------------------------------------------------------------------ curves
@dataclass(frozen=True)
class Curve:
    """One model's line; ``markers`` when it has few points (each is then visible)."""

    name: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    color: str
    markers: bool


@dataclass(frozen=True)
class CurvesDrawing:
    """A training chart: one line per model, in training order, coloured by :data:`MODEL_COLORS`."""

    title: str
    x_title: str
    y_title: str
    curves: tuple[Curve, ...]
    height: int = 300
    line_px: float = 2.0
    marker_px: float = 6.0


def curves_drawing(points, y: str, title: str, x: str = "step") -> CurvesDrawing:
    """The chart of ``y`` against ``x`` from points or job events (``{"model", x, y, ...}``); points without a
    finite ``y`` are left out."""
    by: dict[str, tuple[list, list]] = {}
    for ev in points:
        if "model" in ev and x in ev and y in ev and ev[y] is not None and math.isfinite(float(ev[y])):
            xs, ys = by.setdefault(ev["model"], ([], []))
            xs.append(ev[x])
            ys.append(float(ev[y]))
    curves = tuple(Curve(name, tuple(xs), tuple(ys), MODEL_COLORS.get(name, OTHER_MODEL_COLOR), len(xs) < 30)
                   for name, (xs, ys) in by.items())
    return CurvesDrawing(title=title, x_title=x, y_title=y.replace("_", " "), curves=curves)
