"""Which runs the Runs page lists: by kind and by state, kept in the URL (``?kind=grid&state=failed``)."""

from __future__ import annotations

import streamlit as st

import runs
from runs import kinds
from ui import state

NO_FILTER = {"kind": [], "state": []}


def filter_bar(all_runs: list[runs.JobStatus]) -> list[runs.JobStatus]:
    """Draw the kind and state filters (restored from and written to the URL); return the runs they keep."""
    known_kinds = sorted(set(kinds.KINDS) | {r.kind for r in all_runs})
    query = state.read_query_params(NO_FILTER, errors=[])
    c1, c2 = st.columns(2)
    chosen_kinds = c1.multiselect("Kind", known_kinds, default=[k for k in query["kind"] if k in known_kinds],
                                  key="runs-kind", format_func=kinds.title, placeholder="all kinds")
    chosen_states = c2.multiselect("State", list(runs.STATES), key="runs-state", placeholder="all states",
                                   default=[s for s in query["state"] if s in runs.STATES])
    state.write_query_params({"kind": chosen_kinds, "state": chosen_states}, defaults=NO_FILTER)
    return [r for r in all_runs
            if (not chosen_kinds or r.kind in chosen_kinds) and (not chosen_states or r.state in chosen_states)]
