"""Kronecker lab: grow a self-similar layer graph from a small lower-triangular matrix, see it, and train it.

The screen, top to bottom: the base graph editor beside the growth controls, the grown graph's numbers and
downloads, then one tab per way of looking at it, and a Train tab. A link (or a stored run) re-opens the view;
the sidebar's Copy link holds it.
"""

from __future__ import annotations

import streamlit as st

from ui import nav
from ui.kronecker import editor, link, train, views

nav.page_setup("pages/3_Kronecker_Lab.py")

link.init_state()

st.title("Kronecker lab")
st.caption(
    "A small network is a lower-triangular matrix: the diagonal means *run this layer*, entries below it are "
    "inputs (weighted and summed). Kronecker-multiplying the matrix with itself grows a self-similar graph whose "
    "nodes are tuples of the base layers — node `ab` runs `a` on stream 1 and `b` on stream 2 — so a few layers "
    "make many computational steps."
)
for note in link.link_notes():
    st.warning(note)

left, right = st.columns([3, 2], gap="large")
with left:
    base, names = editor.base_graph_editor()
with right:
    power, second, second_names = editor.grow_controls()

spec = editor.graph_spec(base, names, power, second, second_names)
if spec is None:
    st.stop()
link.write_graph(spec)

graph = views.grown_graph(spec)
views.summary(spec, graph)
views.downloads(graph)

TABS = ["Adjacency", "Data flow", "Equations", "Streams", "Train"]
tab_adj, tab_flow, tab_eq, tab_streams, tab_train = st.tabs(TABS, default=link.opening_tab())
with tab_adj:
    views.adjacency_tab(graph)
with tab_flow:
    views.dataflow_tab(graph)
with tab_eq:
    views.equations_tab(graph)
with tab_streams:
    views.streams_tab(graph)
with tab_train:
    train.train_tab(spec, graph)

with st.sidebar:
    link.copy_link_section()
