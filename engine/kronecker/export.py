"""A graph as files: the adjacency as npy/csv, the graph as JSON, and its pictures as PNG.

Every picture is rendered (matplotlib, object API) from the same description the page draws with plotly
(:mod:`engine.kronecker.drawing`: positions, sizes, colours, colour scale and thresholds), so ``dataflow.png``
and ``adjacency.png`` are the charts on the page, at :data:`PNG_SCALE` times its pixels.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import numpy as np

from engine.kronecker.drawing import (BLOCK_CELLS, DRAW_EDGES, DRAW_NODES, EDGE_RGBA, NAME_COLOR, NAME_PX,
                                      STREAM_COLORS,
                                      SUMMARY_ARC_RGBA, VIRIDIS, AdjacencyDrawing, AdjacencyPicture, CurvesDrawing,
                                      DataflowDrawing, Frame, SummaryDrawing, adjacency_drawing,
                                      adjacency_picture, dataflow_drawing, dataflow_is_summary, summary_drawing,
                                      value_range)
from engine.kronecker.graph import KronGraph, format_number
from engine.png import png_bytes

__all__ = ["BLOCK_CELLS", "DENSE_EXPORT_LIMIT", "DRAW_EDGES", "DRAW_NODES", "STREAM_COLORS", "AdjacencyPicture",
           "adjacency_csv", "adjacency_figure_png", "curves_png", "adjacency_npy", "adjacency_picture", "adjacency_png",
           "dataflow_is_summary", "dataflow_png", "files"]

#: Up to this many nodes the adjacency is exported dense (n x n); above it as sparse (row, col, weight) triples,
#: because a dense 6,561-node matrix is 344 MB of float64 for 1.7 M non-zero entries.
DENSE_EXPORT_LIMIT = 1024
PT_PER_PX = 0.75  # a CSS pixel in points: the PNGs render at 96 dpi per scale, so 1 PNG pixel = 1 page pixel
PNG_SCALE = 2  # downloads at twice the page's pixels (sharp in a paper or on a retina screen)
#: matplotlib's text engine and font cache are shared state: one render at a time (pages render from threads).
_RENDER_LOCK = threading.Lock()


# ----------------------------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------------------------


def adjacency_npy(graph: KronGraph, dense_limit: int = DENSE_EXPORT_LIMIT) -> tuple[str, bytes]:
    """``("adjacency.npy", dense n x n)`` for small graphs, else ``("adjacency_coo.npy", (nnz, 3))`` whose
    columns are row, column and weight (counted from 0)."""
    buf = io.BytesIO()
    if graph.n_nodes <= dense_limit:
        np.save(buf, graph.adjacency.toarray())
        return "adjacency.npy", buf.getvalue()
    coo = graph.adjacency.tocoo()
    order = np.lexsort((coo.col, coo.row))
    np.save(buf, np.stack([coo.row[order], coo.col[order], coo.data[order]], axis=1).astype(np.float64))
    return "adjacency_coo.npy", buf.getvalue()


def adjacency_csv(graph: KronGraph, dense_limit: int = DENSE_EXPORT_LIMIT) -> tuple[str, bytes]:
    """``("adjacency.csv", ...)`` with node labels as header and first column for small graphs, else
    ``("adjacency_coo.csv", ...)`` with one ``row,col,weight,row_label,col_label`` line per entry."""
    labels = graph.labels
    out = io.StringIO()
    if graph.n_nodes <= dense_limit:
        dense = graph.adjacency.toarray()
        out.write("," + ",".join(labels) + "\n")
        for i, row in enumerate(dense):
            out.write(labels[i] + "," + ",".join(format_number(v) for v in row) + "\n")
        return "adjacency.csv", out.getvalue().encode()
    coo = graph.adjacency.tocoo()
    order = np.lexsort((coo.col, coo.row))
    out.write("row,col,weight,row_label,col_label\n")
    for i, j, w in zip(coo.row[order].tolist(), coo.col[order].tolist(), coo.data[order].tolist()):
        out.write(f"{i},{j},{format_number(w)},{labels[i]},{labels[j]}\n")
    return "adjacency_coo.csv", out.getvalue().encode()


def files(graph: KronGraph) -> dict[str, tuple[Callable[[], bytes], str]]:
    """Every download of a graph: file name -> (a function making its bytes, MIME type); made only when asked."""
    npy = "adjacency.npy" if graph.n_nodes <= DENSE_EXPORT_LIMIT else "adjacency_coo.npy"
    csv = "adjacency.csv" if graph.n_nodes <= DENSE_EXPORT_LIMIT else "adjacency_coo.csv"
    return {
        npy: (lambda: adjacency_npy(graph)[1], "application/octet-stream"),
        csv: (lambda: adjacency_csv(graph)[1], "text/csv"),
        "graph.json": (lambda: graph.to_json().encode(), "application/json"),
        "dataflow.png": (lambda: dataflow_png(graph), "image/png"),
        "adjacency.png": (lambda: adjacency_figure_png(graph), "image/png"),
    }


# ----------------------------------------------------------------------------------------------------------------
# pictures: the page's descriptions rendered with matplotlib
# ----------------------------------------------------------------------------------------------------------------


def _rgba(rgba: tuple) -> tuple[float, float, float, float]:
    r, g, b, a = rgba
    return r / 255, g / 255, b / 255, a


def viridis_rgb(values: np.ndarray, zmin: float, zmax: float) -> np.ndarray:
    """``values`` coloured by the page's scale (:data:`~engine.kronecker.drawing.VIRIDIS`, linear between its
    stops, as plotly does) as uint8 RGB; NaN is white (the background)."""
    stops = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in VIRIDIS], dtype=float)
    v = np.asarray(values, dtype=float)
    t = np.clip((v - zmin) / max(zmax - zmin, 1e-300), 0.0, 1.0) * (len(VIRIDIS) - 1)
    t = np.nan_to_num(t)
    i = np.minimum(t.astype(int), len(VIRIDIS) - 2)
    rgb = stops[i] + (t - i)[..., None] * (stops[i + 1] - stops[i])
    rgb[~np.isfinite(v)] = 255.0
    return np.rint(rgb).astype(np.uint8)


def adjacency_png(graph: KronGraph, max_cells: int = BLOCK_CELLS, cell: int | None = None) -> bytes:
    """The adjacency's cells alone (no axes), one square of ``cell`` pixels each, in the page's colours: the
    entries (or the blocks' share of non-zero entries) on its Viridis scale, white where nothing is."""
    pic = adjacency_picture(graph, max_cells=max_cells)
    m = pic.values.shape[0]
    return png_bytes(viridis_rgb(pic.values, *value_range(pic.values)), scale=cell or max(1, 512 // m))


def _canvas(width: int, height: int, scale: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 96, height / 96), dpi=96 * scale, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _plot_axes(fig, frame: Frame):
    """Axes placed exactly where the page's plot area is, with the page's ranges."""
    l, _r, t, b = frame.margin
    w, h = frame.plot_size
    ax = fig.add_axes((l / frame.width, b / frame.height, w / frame.width, h / frame.height))
    ax.set_xlim(*frame.x_range)
    ax.set_ylim(*frame.y_range)
    return ax


def _png(fig, scale: float) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96 * scale, metadata={"Software": None})
    return buf.getvalue()


def _draw_flow(fig, d: DataflowDrawing) -> None:
    from matplotlib.lines import Line2D

    f = d.frame
    ax = _plot_axes(fig, f)
    ax.plot(d.edges_x, d.edges_y, color=_rgba(EDGE_RGBA), linewidth=PT_PER_PX, zorder=1)
    size = (d.dot_px * PT_PER_PX) ** 2
    for s in d.streams:
        faces = [s.color if run else "none" for run in s.runs.tolist()]
        ax.scatter(s.x, s.y, s=size, facecolors=faces, edgecolors=s.color, linewidths=1.5 * PT_PER_PX, zorder=2)
        for x, y, letter, run in zip(s.x.tolist(), s.y.tolist(), s.letters, s.runs.tolist()):
            ax.text(x, y, letter, ha="center", va="center", fontsize=d.letter_px * PT_PER_PX, zorder=3,
                    color="white" if run else s.color)
    for x, y, name in zip(d.names_x.tolist(), d.names_y.tolist(), d.names):
        ax.text(x, y, name, ha="center", va="center", fontsize=NAME_PX * PT_PER_PX, color=NAME_COLOR, zorder=3)
    ax.set_xticks(range(d.levels))
    ax.set_xlabel(d.x_title)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    handles = [Line2D([], [], linestyle="none", marker="o", markersize=10 * PT_PER_PX, color=s.color,
                      label=f"stream {s.stream + 1}") for s in d.streams]
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=max(1, len(handles)),
              frameon=False, fontsize=9)
    fig.text(8 / f.width, 1 - 6 / f.height, d.title, ha="left", va="top", fontsize=10)


def _draw_summary(fig, d: SummaryDrawing) -> None:
    f = d.frame
    ax = _plot_axes(fig, f)
    for x, y, w in zip(d.arcs_x, d.arcs_y, d.arcs_px):
        ax.plot(x, y, color=_rgba(SUMMARY_ARC_RGBA), linewidth=w * PT_PER_PX, zorder=1)
    ax.bar(np.arange(len(d.counts)), d.counts, width=d.bar_width, color=d.bar_color, zorder=2)
    ax.set_xticks(range(len(d.counts)))
    ax.set_xlabel("depth (sequential step)")
    ax.set_ylabel("nodes at this depth")
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    fig.text(8 / f.width, 1 - 6 / f.height, d.title, ha="left", va="top", fontsize=10)


def dataflow_png(graph: KronGraph, scale: float = PNG_SCALE) -> bytes:
    """The data-flow chart of the page as a PNG: nodes by depth, grey edges, one dot per stream (filled = runs its
    layer), letters and names where the page has room for them; a big graph (:func:`dataflow_is_summary`) as the
    page's depth summary (bars of nodes per depth, arcs of the edges between depths)."""
    summary = dataflow_is_summary(graph)
    d = summary_drawing(graph) if summary else dataflow_drawing(graph)
    with _RENDER_LOCK:
        fig = _canvas(d.frame.width, d.frame.height, scale)
        (_draw_summary if summary else _draw_flow)(fig, d)
        return _png(fig, scale)


ADJACENCY_PNG_WIDTH = 820  # CSS px: the page's plot width, its margins and the colour bar


def adjacency_figure_png(graph: KronGraph, weights=None, title: str | None = None, colorbar: str = "weight",
                         scale: float = PNG_SCALE) -> bytes:
    """The adjacency chart of the page as a PNG: the same cells (or blocks), the same Viridis scale and range, the
    node names on the axes when the page shows them, and a colour bar."""
    from matplotlib.colors import LinearSegmentedColormap

    d: AdjacencyDrawing = adjacency_drawing(graph, weights, title=title, colorbar=colorbar)
    m = d.values.shape[0]
    with _RENDER_LOCK:
        fig = _canvas(ADJACENCY_PNG_WIDTH, d.height, scale)
        ax = fig.add_axes((0.1, 0.06, 0.72, 0.76 if d.ticks else 0.82))
        cmap = LinearSegmentedColormap.from_list("page_viridis", list(VIRIDIS), N=256).with_extremes(bad="white")
        grid = {} if d.blocks else {"edgecolors": "white", "linewidth": PT_PER_PX}
        mesh = ax.pcolormesh(np.ma.masked_invalid(d.values), cmap=cmap, vmin=d.zmin, vmax=d.zmax, **grid)
        ax.set_xlim(0, m)
        ax.set_ylim(m, 0)
        ax.xaxis.tick_top()
        ax.xaxis.set_label_position("top")
        if d.ticks:
            ax.set_xticks(np.arange(m) + 0.5, d.ticks, rotation=90, fontsize=8)
            ax.set_yticks(np.arange(m) + 0.5, d.ticks, fontsize=8)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_xlabel("column (is read)")
        ax.set_ylabel("row (reads)")
        bar = fig.colorbar(mesh, ax=ax, fraction=0.05, pad=0.03)
        bar.set_label(d.colorbar)
        if d.title:
            fig.text(0.02, 0.99, d.title, ha="left", va="top", fontsize=11)
        return _png(fig, scale)


CURVES_PNG_WIDTH = 640  # CSS px: a half-width chart of the Train tab


def curves_png(d: CurvesDrawing, width: int = CURVES_PNG_WIDTH, scale: float = PNG_SCALE) -> bytes:
    """A training chart of the page as a PNG: the same lines, colours, widths and markers, in the same order."""
    with _RENDER_LOCK:
        fig = _canvas(width, d.height, scale)
        ax = fig.add_axes((70 / width, 70 / d.height, (width - 90) / width, (d.height - 110) / d.height))
        for c in d.curves:
            ax.plot(c.x, c.y, color=c.color, linewidth=d.line_px * PT_PER_PX, label=c.name,
                    marker="o" if c.markers else None, markersize=d.marker_px * PT_PER_PX)
        ax.set_xlabel(d.x_title)
        ax.set_ylabel(d.y_title)
        ax.grid(True, color="#e6e6e6", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("right", "top"):
            ax.spines[side].set_visible(False)
        if d.curves:
            ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(d.curves), frameon=False, fontsize=8)
        fig.text(8 / width, 1 - 6 / d.height, d.title, ha="left", va="top", fontsize=10)
        return _png(fig, scale)
