"""A graph as files (adjacency as npy/csv, JSON, PNG pictures), and the thresholds every picture of it obeys.

The page's interactive charts and these PNGs draw the same graph, so they share one definition of when a graph
is too big to draw cell by cell or node by node (:func:`adjacency_picture`, :func:`dataflow_is_summary`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from engine.kronecker.graph import KronGraph, format_number
from engine.png import font, png_bytes

#: Up to this many nodes the adjacency is exported dense (n x n); above it as sparse (row, col, weight) triples,
#: because a dense 6,561-node matrix is 344 MB of float64 for 1.7 M non-zero entries.
DENSE_EXPORT_LIMIT = 1024
#: Above this many nodes, a picture of the adjacency shows blocks of nodes (at most this many per side).
BLOCK_CELLS = 256
#: Above this many nodes or DRAW_EDGES edges, the data flow is drawn as its depth-level summary.
DRAW_NODES = 250
DRAW_EDGES = 5000
#: Stream colours shared by the page's charts and the PNGs (colour-blind-safe Okabe-Ito order).
STREAM_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")


# ----------------------------------------------------------------------------------------------------------------
# what a picture shows
# ----------------------------------------------------------------------------------------------------------------


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


def dataflow_is_summary(graph: KronGraph) -> bool:
    """True when the graph is too big to draw node by node (then both the page and the PNG draw depth levels)."""
    return graph.n_nodes > DRAW_NODES or graph.n_edges > DRAW_EDGES


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
        "adjacency.png": (lambda: adjacency_png(graph), "image/png"),
    }


# ----------------------------------------------------------------------------------------------------------------
# pictures (Pillow, no browser)
# ----------------------------------------------------------------------------------------------------------------


def adjacency_png(graph: KronGraph, max_cells: int = BLOCK_CELLS, cell: int | None = None) -> bytes:
    """The adjacency as a PNG: dark = non-zero; blocks shaded by their share of non-zero entries."""
    pic = adjacency_picture(graph, max_cells=max_cells)
    density = np.nan_to_num(pic.values if pic.downsampled else np.isfinite(pic.values).astype(float))
    m = density.shape[0]
    cell = cell or max(1, 512 // m)
    return png_bytes((255 - np.clip(density, 0, 1) * 230).astype(np.uint8), scale=cell)


def dataflow_png(graph: KronGraph) -> bytes:
    """The layered data flow as a PNG: nodes by depth, grey edges, one dot per stream (filled = runs its layer);
    a big graph (:func:`dataflow_is_summary`) as bars of nodes per depth with arcs between depths."""
    from PIL import Image, ImageDraw

    big, small = font(14), font(11)
    if not dataflow_is_summary(graph):
        lay = graph.layout()
        n_levels = int(lay.depth.max()) + 1
        height_nodes = int(np.bincount(lay.depth).max())
        s = graph.n_streams
        dx, dy, r = 150, max(34, 14 * s + 10), 6
        w = 80 + dx * max(n_levels - 1, 1) + 80
        h = 80 + dy * max(height_nodes - 1, 1) + 60
        img = Image.new("RGB", (w, h), "white")
        d = ImageDraw.Draw(img)
        px = 80 + lay.x * dx
        py = h / 2 - lay.y * dy
        rows, cols, _ = graph.edge_list()
        for i, j in zip(rows.tolist(), cols.tolist()):
            d.line([(px[j], py[j]), (px[i], py[i])], fill=(190, 190, 190), width=1)
        labels = graph.labels
        for i in range(graph.n_nodes):
            for k in range(s):
                cy = py[i] + (k - (s - 1) / 2) * (2 * r + 2)
                color = STREAM_COLORS[k % len(STREAM_COLORS)]
                box = [px[i] - r, cy - r, px[i] + r, cy + r]
                if graph.runs[i, k]:
                    d.ellipse(box, fill=color)
                else:
                    d.ellipse(box, outline=color, width=2)
            d.text((px[i] + r + 4, py[i] - 8), labels[i], fill="black", font=small)
        d.text((10, 10), f"{graph.n_nodes} nodes, {len(rows)} edges, {s} stream(s)", fill="black", font=big)
        for k in range(s):
            d.ellipse([10 + 80 * k, 34, 22 + 80 * k, 46], fill=STREAM_COLORS[k % len(STREAM_COLORS)])
            d.text((26 + 80 * k, 32), f"stream {k + 1}", fill="black", font=small)
    else:
        counts, edges = graph.depth_summary()
        n_levels = len(counts)
        dx = 110
        w, h = 80 + dx * max(n_levels - 1, 1) + 80, 520
        img = Image.new("RGB", (w, h), "white")
        d = ImageDraw.Draw(img)
        biggest = max(int(counts.max()), 1)
        top = math.log1p(max(edges.values())) if edges else 1.0
        xs = 80 + np.arange(n_levels) * dx
        base_y, bar_h = h - 60, 200.0
        # Edges between levels as arcs above the bars: the farther they jump, the higher the arc.
        for (a, b), c in sorted(edges.items(), key=lambda kv: kv[1]):
            width = 1 + int(6 * math.log1p(c) / top)
            lift = 40 + 180 * (b - a) / max(n_levels - 1, 1)
            y0 = base_y - bar_h * counts[a] / biggest
            y1 = base_y - bar_h * counts[b] / biggest
            pts = [(float((1 - t) * xs[a] + t * xs[b]), float((1 - t) * y0 + t * y1 - 4 * t * (1 - t) * lift))
                   for t in np.linspace(0, 1, 24)]
            d.line(pts, fill=(175, 175, 175), width=width)
        for lvl, c in enumerate(counts.tolist()):
            d.rectangle([xs[lvl] - 16, base_y - bar_h * c / biggest - 2, xs[lvl] + 16, base_y],
                        fill=STREAM_COLORS[0])
            d.text((xs[lvl] - 16, base_y + 6), f"{c:,}", fill="black", font=small)
            d.text((xs[lvl] - 16, base_y + 22), f"d{lvl}", fill=(90, 90, 90), font=small)
        d.text((10, 10), f"{graph.n_nodes:,} nodes, {graph.n_edges:,} edges: too many to draw one by one; summary "
               "(bar = nodes at that depth, arc width = edges between two depths, log scale)", fill="black",
               font=big)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
