"""Runs and artifacts: every job and every stored result, newest first — status, re-open, download, delete."""

import streamlit as st

from ui import nav
from ui.runs import filters, overview, rows

nav.page_setup("pages/4_Runs.py")

st.title("Runs and artifacts")
st.caption("Every background job and every cached result, newest first. Results are keyed by their spec, so "
           "asking again for the same computation reopens it instead of recomputing.")

all_runs = overview.store_overview()  # counts, store size, "Clear all…"
shown = filters.filter_bar(all_runs)  # by kind and state, kept in the URL
rows.run_list(shown, total=len(all_runs))  # picture, status, re-open, download, cancel, delete
