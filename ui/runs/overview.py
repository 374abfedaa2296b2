"""The top of the Runs page: how many runs, how many live, how big the store is, and "Clear all" (asks first)."""

from __future__ import annotations

import streamlit as st

import runs
from cache import default_store, human_size


def store_overview() -> list[runs.JobStatus]:
    """Draw the counts and the store's size with its "Clear all…" button; return every run, newest first."""
    store = default_store()
    all_runs = runs.list_runs()
    size = store.size_bytes()
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Runs", len(all_runs))
    m2.metric("Live jobs", sum(r.active for r in all_runs))
    m3.metric("Store size", human_size(size), help=f"limit {human_size(store.limit_bytes)}; least recently used "
              "results are evicted beyond it")
    with m4:
        if st.button("Clear all…", key="runs-clear", icon=":material/delete_sweep:", disabled=not all_runs,
                     help="Delete every job and every stored result (asks first)"):
            st.session_state["runs-confirm-clear"] = True
    _clear_all_confirmation(len(all_runs), size)
    st.caption(f"Store: `{store.root}`")
    return all_runs


def _clear_all_confirmation(n_runs: int, size: int) -> None:
    if not st.session_state.get("runs-confirm-clear"):
        return
    with st.container(border=True):
        st.warning(f"Delete all {n_runs} runs and {human_size(size)} of stored results? Running jobs are "
                   "stopped. This cannot be undone.")
        yes, no, _ = st.columns([1, 1, 3])
        if yes.button("Yes, delete everything", key="runs-clear-yes", type="primary", width="stretch"):
            removed = runs.clear_all()
            st.session_state["runs-confirm-clear"] = False
            st.toast(f"Removed {removed} runs")
            st.rerun()
        if no.button("Keep them", key="runs-clear-no", width="stretch"):
            st.session_state["runs-confirm-clear"] = False
            st.rerun()
