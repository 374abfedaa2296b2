"""Which runs the Runs page lists: by kind and by state, kept in the URL (``?kind=grid&state=failed``).

A hand-edited link (``?state=none``, a kind that does not exist) keeps the values it can use and says which it
ignored and what is allowed, so the page always renders.
"""

from __future__ import annotations

import streamlit as st

import runs
from runs import kinds
from ui import state

NO_FILTER = {"kind": [], "state": []}


def _from_link(name: str, allowed: list[str]) -> list[str]:
    """The link's comma-separated values of ``name`` that are ``allowed`` (a warning names the others)."""
    if name not in st.query_params:
        return []
    values = [v.strip() for v in st.query_params[name].split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        shown = ", ".join(repr(v if len(v) <= 40 else v[:39] + "…") for v in bad[:3])
        shown += " …" if len(bad) > 3 else ""
        st.warning(f"Ignored link parameter {name}: {shown} — allowed: {', '.join(allowed)} (comma-separated).")
    return list(dict.fromkeys(v for v in values if v in allowed))


def filter_bar(all_runs: list[runs.JobStatus]) -> list[runs.JobStatus]:
    """Draw the kind and state filters (restored from and written to the URL); return the runs they keep."""
    known_kinds = sorted(set(kinds.KINDS) | {r.kind for r in all_runs})
    link_kinds, link_states = _from_link("kind", known_kinds), _from_link("state", list(runs.STATES))
    c1, c2 = st.columns(2)
    chosen_kinds = c1.multiselect("Kind", known_kinds, default=link_kinds, key="runs-kind", format_func=kinds.title,
                                  placeholder="all kinds")
    chosen_states = c2.multiselect("State", list(runs.STATES), default=link_states, key="runs-state",
                                   placeholder="all states")
    state.write_query_params({"kind": chosen_kinds, "state": chosen_states}, defaults=NO_FILTER)
    return [r for r in all_runs
            if (not chosen_kinds or r.kind in chosen_kinds) and (not chosen_states or r.state in chosen_states)]
