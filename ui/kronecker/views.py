"""The sections that show the grown graph: its numbers, its downloads, and the adjacency, data-flow, equations
and streams tabs."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from engine.kronecker import export
from engine.kronecker.graph import KronGraph
from engine.kronecker.spec import KronSpec
from ui.downloads import download_row
from ui.kronecker.figures import adjacency_figure, dataflow_figure, streams_figure

DOWNLOAD_ICON = ":material/download:"
EQUATIONS_PER_PAGE = 40
STREAM_TEXT_CHARS = 2000
LABEL_MATRIX_NODES = 12


@st.cache_resource(max_entries=6, show_spinner="Growing the graph…")
def _graph(spec_json: str) -> KronGraph:
    return KronSpec.from_json(spec_json).build()


def grown_graph(spec: KronSpec) -> KronGraph:
    """The graph a spec describes, kept across reruns (a power of tens of thousands of nodes takes a moment)."""
    return _graph(spec.to_json())


def node_names(graph: KronGraph) -> list[str]:
    """A header per node: its name (``"ab"`` for a power: the Kronecker product of the base names); a name that
    two nodes share gets its position too (``"aaa (X3)"``), so rows and columns stay distinct."""
    labels = list(graph.labels)
    seen = pd.Series(labels).duplicated(keep=False).tolist()
    return [f"{name} (X{i + 1})" if twice else name for i, (name, twice) in enumerate(zip(labels, seen))]


def _leading(a: int, digits: int) -> tuple[int, int]:
    """``a`` (> 0) rounded half up to ``digits`` significant digits: (those digits as an int, exponent of the first);
    integer arithmetic only, so exact for ints of any size."""
    exp = int(math.log10(a))
    while 10**exp > a:
        exp -= 1
    while 10 ** (exp + 1) <= a:
        exp += 1
    shift = exp - (digits - 1)
    lead = (a + 10**shift // 2) // 10**shift if shift > 0 else a * 10**-shift
    return (lead // 10, exp + 1) if lead >= 10**digits else (lead, exp)


def compact(v: int) -> str:
    """A metric value of at most six characters, so that it is never cut: ``6,561`` stays, ``1,673,055`` becomes
    ``1.67 M``, ``29,247,820,616,474`` ``2.9e13``."""
    a, sign = abs(int(v)), "-" if v < 0 else ""
    if a < 100_000:
        return f"{v:,}"
    lead, exp = _leading(a, 3)
    if exp < 9 and not sign:
        rounded = lead * 10 ** (exp - 2)
        return f"{rounded / 10**6:.3g} M" if rounded >= 10**6 else f"{rounded / 10**3:.3g} k"
    if exp < 100 and not sign:
        lead, exp = _leading(a, 2)
        return f"{lead // 10}.{lead % 10}e{exp}"
    lead, exp = _leading(a, 1)
    return f"{sign}{lead}e{exp}"


def summary(spec: KronSpec, graph: KronGraph) -> None:
    """The formula and the graph's numbers in two rows of metrics (exact ones in a caption when they round)."""
    stats = graph.stats()
    st.markdown(f"#### Graph `{spec.describe()}`")
    m = st.columns(4)
    m[0].metric("Nodes", compact(stats.nodes))
    m[1].metric("Edges", compact(stats.edges), help="non-zero entries below the diagonal")
    m[2].metric("Paths", compact(stats.paths), help="input-to-output paths, counted exactly (see below)")
    m[3].metric("Longest path", compact(stats.longest_path),
                help="nodes on the longest input-to-output path: the sequential depth")
    m = st.columns(4)
    m[0].metric("Streams", stats.streams)
    m[1].metric("Applications", compact(stats.layer_applications),
                help="layer applications: one per (node, stream) that runs its layer")
    m[2].metric("Layers", stats.distinct_layers, help="distinct layers applied (what a tied network learns)")
    values = (stats.nodes, stats.edges, stats.layer_applications, stats.paths, stats.longest_path)
    if any(compact(v) != f"{v:,}" for v in values):
        st.caption(f"Exact: {stats.nodes:,} nodes · {stats.edges:,} edges · {stats.layer_applications:,} layer "
                   f"applications · {stats.paths:,} input-to-output paths.")


def downloads(graph: KronGraph) -> None:
    """The adjacency (npy, csv), the graph (JSON) and both charts (PNG: the adjacency and data-flow charts below,
    as drawn), made only when clicked."""
    download_row(export.files(graph), key="kr", icon=DOWNLOAD_ICON)
    if graph.n_nodes > export.DENSE_EXPORT_LIMIT:
        st.caption(f"Above {export.DENSE_EXPORT_LIMIT:,} nodes the adjacency downloads are sparse triples "
                   "(row, column, weight; counted from 0) rather than a dense matrix.")


def adjacency_tab(graph: KronGraph) -> None:
    fig, note = adjacency_figure(graph)
    if note:
        st.info(note)
    st.plotly_chart(fig, key="kr_adjacency", width="stretch")
    if graph.n_nodes <= LABEL_MATRIX_NODES:
        st.caption("Label matrix: row = the node that reads, column = the node it reads; the entry is the column "
                   "node's name where the adjacency is non-zero.")
        idx = node_names(graph)
        st.dataframe(pd.DataFrame(graph.label_matrix(), index=idx, columns=idx), key="kr_label_matrix")


def dataflow_tab(graph: KronGraph) -> None:
    fig, note = dataflow_figure(graph)
    if note:
        st.info(note)
    st.plotly_chart(fig, key="kr_dataflow", width="stretch")
    if not note:
        st.caption("Filled dot: that stream runs its layer at this node; open dot: it passes its summed input on. "
                   "Hover a dot for the node's name and equation (names and letters that would overlap are left "
                   "out of the drawing).")


def equations_tab(graph: KronGraph) -> None:
    """The equations in execution order, a page of them at a time."""
    n_pages = max(1, math.ceil(graph.n_nodes / EQUATIONS_PER_PAGE))
    page_no = 1
    if n_pages > 1:
        page_no = st.columns([1, 3])[0].number_input(f"Page (of {n_pages:,})", 1, n_pages, 1, key="kr_eq_page")
    start = (int(page_no) - 1) * EQUATIONS_PER_PAGE
    stop = min(start + EQUATIONS_PER_PAGE, graph.n_nodes)
    st.caption(f"Equations X{start + 1}–X{stop} of {graph.n_nodes:,} (in execution order).")
    st.code("\n".join(graph.dataflow(start, stop)), language=None, wrap_lines=True)


def streams_tab(graph: KronGraph) -> None:
    st.caption("The layer sequence each stream runs along the diagonal (`-` = passes its input through).")
    for k, text in enumerate(graph.streams()):
        long = len(text) > STREAM_TEXT_CHARS
        st.markdown(f"**Stream {k + 1}**" + (f" — first {STREAM_TEXT_CHARS:,} of {len(text):,} characters"
                                             if long else ""))
        st.code(text[:STREAM_TEXT_CHARS], language=None, wrap_lines=True)
    fig, note = streams_figure(graph)
    if note:
        st.caption(note)
    st.plotly_chart(fig, key="kr_streams", width="stretch")
