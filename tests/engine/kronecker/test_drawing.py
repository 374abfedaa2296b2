"""The PNG downloads are the page's charts: rendered from the descriptions in engine.kronecker.drawing, with the
same positions, sizes, colours, colour scale and thresholds (the page side is checked in
tests/pages/test_kronecker_newcomer.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp
from PIL import Image

from engine.kronecker import drawing, export
from engine.kronecker.graph import KronGraph

EXAMPLE = [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
PASSING = [[1, 0, 0], [1, 0, 0], [0, 1, 1]]  # b passes its input on: open dots


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))


def _image(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _at(img: np.ndarray, frame: drawing.Frame, x, y, scale: float) -> np.ndarray:
    px, py = frame.to_px(x, y)
    return img[np.rint(np.asarray(py) * scale - 0.5).astype(int), np.rint(np.asarray(px) * scale - 0.5).astype(int)]


@pytest.mark.parametrize("base, names, power", [(EXAMPLE, "abc", 2), (EXAMPLE, "abc", 4), (PASSING, "abc", 3),
                                                ([[1, 0], [1, 1]], "ab", 6)])
def test_dataflow_png_puts_each_stream_dot_where_the_page_does_in_its_colour(base, names, power):
    graph = KronGraph(base, names).power(power)
    d = drawing.dataflow_drawing(graph)
    scale = 2
    img = _image(export.dataflow_png(graph, scale=scale))
    assert img.shape[:2] == (d.frame.height * scale, d.frame.width * scale)
    unit = d.frame.px_per_unit()[0]
    for s in d.streams:
        want = np.array(_rgb(s.color))
        # Inside the dot, left of its letter: the stream's colour where it runs (filled), not where it passes.
        inside = np.abs(_at(img, d.frame, s.x - 0.6 * d.dot_px / 2 / unit, s.y, scale) - want).max(axis=1)
        assert (inside[s.runs] <= 12).all(), (s.stream, s.color)
        assert (inside[~s.runs] > 60).all(), (s.stream, s.color)
        # The ring of every dot, filled or open, is the stream's colour (just inside the dot's edge, left side).
        ring = _at(img, d.frame, s.x - (d.dot_px / 2 - 0.25) / unit, s.y, scale)  # on the outline
        assert np.abs(ring - want).max(axis=1).mean() <= 40, (s.stream, s.color)


def test_dataflow_png_shows_the_summary_the_page_shows_for_a_big_graph():
    graph = KronGraph(EXAMPLE, "abc").power(6)
    assert drawing.dataflow_is_summary(graph)
    d = drawing.summary_drawing(graph)
    assert len(d.arcs) == len(graph.depth_summary()[1]) and sum(c for *_, c in d.arcs) == graph.n_edges
    img = _image(export.dataflow_png(graph, scale=1))
    depths = np.arange(len(d.counts))
    tall = d.counts >= 0.2 * d.counts.max()
    mid = _at(img, d.frame, depths[tall], d.counts[tall] * 0.1, 1)  # low in each bar, below every arc
    assert (np.abs(mid - np.array(_rgb(d.bar_color))).max(axis=1) <= 8).all()


def test_adjacency_png_uses_the_page_colour_scale_and_range():
    graph = KronGraph(EXAMPLE, "abc").power(2)
    d = drawing.adjacency_drawing(graph)
    assert (d.zmin, d.zmax) == (0.0, 1.0) and not d.blocks and d.ticks[:2] == ("aa", "ab")
    cells = _image(export.adjacency_png(graph, cell=1))
    on = np.isfinite(d.values)
    assert (cells[on] == _rgb(drawing.VIRIDIS[-1])).all() and (cells[~on] == 255).all()
    fig = _image(export.adjacency_figure_png(graph, scale=1)).reshape(-1, 3)
    top = (fig == _rgb(drawing.VIRIDIS[-1])).all(axis=1).sum()
    assert top > 0.5 * on.sum() * (fig.shape[0] / 1000)  # every cell (and the colour bar's top) in the top colour
    assert (np.abs(fig - _rgb(drawing.VIRIDIS[0])).max(axis=1) <= 3).any()  # the colour bar's bottom
    assert not (np.abs(fig - (25, 25, 25)).max(axis=1) <= 20).sum() > 0.01 * len(fig)  # no dark grey cells


def test_weights_between_the_scale_stops_are_interpolated_as_plotly_does():
    graph = KronGraph([[1, 0], [1, 1]], "ab")
    w = sp.csr_matrix(np.array([[0.0, 0], [0.5, 1.0]]))
    d = drawing.adjacency_drawing(graph, w)
    assert (d.zmin, d.zmax) == (0.0, 1.0)
    rgb = export.viridis_rgb(np.array([0.0, 0.5, 1.0, np.nan]), d.zmin, d.zmax)
    lo, hi = np.array(_rgb(drawing.VIRIDIS[4])), np.array(_rgb(drawing.VIRIDIS[5]))
    assert tuple(rgb[0]) == _rgb(drawing.VIRIDIS[0]) and tuple(rgb[2]) == _rgb(drawing.VIRIDIS[-1])
    assert np.abs(rgb[1] - (lo + (hi - lo) * 0.5)).max() <= 1 and tuple(rgb[3]) == (255, 255, 255)


def test_blocks_above_the_threshold_in_both():
    big = KronGraph(EXAMPLE, "abc").power(6)
    d = drawing.adjacency_drawing(big)
    assert d.blocks and d.values.shape[0] <= drawing.BLOCK_CELLS and d.colorbar == "density" and not d.ticks
    assert Image.open(io.BytesIO(export.adjacency_figure_png(big, scale=1))).size == (export.ADJACENCY_PNG_WIDTH,
                                                                                      d.height)


def test_curves_png_draws_each_model_in_its_page_colour():
    points = [{"model": m, "step": s, "loss": (2.0 if m == "kron_tied" else 1.0) / (1 + s)}
              for m in ("kron_tied", "base") for s in range(40)]
    d = drawing.curves_drawing(points, "loss", "training loss")
    assert [(c.name, c.color, c.markers) for c in d.curves] == [
        ("kron_tied", drawing.MODEL_COLORS["kron_tied"], False), ("base", drawing.MODEL_COLORS["base"], False)]
    img = _image(export.curves_png(d, scale=1)).reshape(-1, 3)
    for c in d.curves:
        assert (img == _rgb(c.color)).all(axis=1).sum() >= 100, c.name
    assert drawing.curves_drawing([{"model": "base", "step": 0, "loss": None}], "loss", "t").curves == ()
