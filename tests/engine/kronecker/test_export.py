"""The page's charts and the PNG downloads obey one set of thresholds (engine.kronecker.export)."""

from __future__ import annotations

import io

import numpy as np
import scipy.sparse as sp
from PIL import Image

from engine.kronecker.export import (BLOCK_CELLS, DRAW_NODES, adjacency_picture, adjacency_png, dataflow_is_summary,
                                     files)
from engine.kronecker.graph import KronGraph

EXAMPLE = [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


def test_adjacency_picture_full_resolution_and_blocks():
    g = KronGraph(EXAMPLE, "abc").power(2)
    pic = adjacency_picture(g)
    assert not pic.downsampled and pic.values.shape == (9, 9)
    np.testing.assert_array_equal(np.isfinite(pic.values), np.kron(EXAMPLE, EXAMPLE) != 0)
    big = KronGraph(EXAMPLE, "abc").power(6)  # 729 nodes > BLOCK_CELLS
    pic = adjacency_picture(big)
    # 729 = 3**6: blocks of 3 follow the self-similar structure
    assert pic.downsampled and pic.values.shape[0] <= BLOCK_CELLS and pic.factor == 3
    assert pic.ends()[-1] == big.n_nodes - 1
    w = sp.csr_matrix(big.adjacency * 0.5)
    weighted = adjacency_picture(big, weights=w)
    assert np.nanmax(weighted.values) == 0.5  # the mean weight of each block's edges


def test_png_and_chart_share_the_block_threshold():
    big = KronGraph(EXAMPLE, "abc").power(6)
    m = adjacency_picture(big).values.shape[0]
    img = Image.open(io.BytesIO(adjacency_png(big)))
    assert img.size == (m * (512 // m), m * (512 // m))


def test_dataflow_summary_threshold():
    g = KronGraph(EXAMPLE, "abc")
    assert not dataflow_is_summary(g.power(2))
    assert g.power(6).n_nodes > DRAW_NODES and dataflow_is_summary(g.power(6))


def test_files_are_made_when_asked():
    g = KronGraph(EXAMPLE, "abc").power(2)
    out = files(g)
    assert set(out) == {"adjacency.npy", "adjacency.csv", "graph.json", "dataflow.png", "adjacency.png"}
    make, mime = out["graph.json"]
    assert mime == "application/json" and KronGraph.from_json(make().decode()) == g
