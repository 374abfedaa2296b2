"""Kronecker-grown layer graphs: see them (graph, spec, export) and train them (net, tasks, train, results).

Only the torch-free half is imported here, so ``from engine.kronecker import KronGraph`` stays light; the
training half is imported from its modules (``engine.kronecker.net``, ``.train``, ``.results``).
"""

from engine.kronecker.export import (BLOCK_CELLS, DENSE_EXPORT_LIMIT, DRAW_EDGES, DRAW_NODES, STREAM_COLORS,
                                     adjacency_csv, adjacency_npy, adjacency_picture, adjacency_png,
                                     dataflow_is_summary, dataflow_png)
from engine.kronecker.graph import GraphStats, KronGraph, Layout
from engine.kronecker.spec import (MAX_BASE_NODES, MAX_ENTRIES, MAX_NODES, MAX_POWER, PRESETS, BasePreset,
                                   KronSpec, KronTrainSpec, default_names, parse_matrix, parse_names, read_table)

__all__ = [
    "BLOCK_CELLS", "DENSE_EXPORT_LIMIT", "DRAW_EDGES", "DRAW_NODES", "STREAM_COLORS", "adjacency_csv",
    "adjacency_npy", "adjacency_picture", "adjacency_png", "dataflow_is_summary", "dataflow_png", "GraphStats",
    "KronGraph", "Layout", "MAX_BASE_NODES", "MAX_ENTRIES", "MAX_NODES", "MAX_POWER", "PRESETS", "BasePreset",
    "KronSpec", "KronTrainSpec", "default_names", "parse_matrix", "parse_names", "read_table",
]
