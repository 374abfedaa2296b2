"""Runs and artifacts: every job and every stored result, newest first — status, re-open, resume, name, compare,
download, delete."""

import streamlit as st

from ui import nav
from ui.runs import compare, filters, overview, rows

nav.page_setup("pages/4_Runs.py")

st.title("Runs and artifacts")
st.caption("Every background job and every cached result, newest first. Results are keyed by their spec, so "
           "asking again for the same computation reopens it instead of recomputing.")

all_runs = overview.store_overview()  # counts, store size, "Clear all…"
shown = filters.filter_bar(all_runs)  # by kind and state, kept in the URL
compare.compare_section(shown)  # pick runs: their settings side by side, the differing ones first
rows.run_list(shown, total=len(all_runs))  # picture, name and key settings, status; open, resume, name, delete
