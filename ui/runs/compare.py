"""Compare settings: pick runs, see their specs side by side — one row per setting, one column per run, the
settings that differ first (the ones that explain a difference in results)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import runs
from runs import describe, kinds, notes

MISSING = "—"  # a setting a run does not have (another kind, or an older spec)


def run_label(run: runs.JobStatus, name: str = "") -> str:
    """A run as a column header or a choice: its name, else its kind and the end of its id."""
    return f"{name} · {run.id[-6:]}" if name else f"{kinds.title(run.kind)} · {run.id[-6:]}"


def settings_table(chosen: list[runs.JobStatus], names: dict[str, str] | None = None) -> pd.DataFrame:
    """Every spec field of ``chosen`` as rows (``model.join`` …), a column per run; the fields whose values
    differ between the runs first, then the ones they share, each group in the specs' own order."""
    names = names or {}
    columns = {run.id: describe.flatten(run.spec, run.kind) for run in chosen}
    fields = list(dict.fromkeys(f for flat in columns.values() for f in flat))
    rows = {f: [columns[run.id].get(f, MISSING) for run in chosen] for f in fields}
    differ = [f for f in fields if len(set(rows[f])) > 1]
    same = [f for f in fields if f not in differ]
    table = pd.DataFrame([rows[f] for f in differ + same], index=pd.Index(differ + same, name="setting"),
                         columns=[run_label(run, names.get(run.id, "")) for run in chosen])
    table.insert(0, "differs", [True] * len(differ) + [False] * len(same))
    return table


def compare_section(shown: list[runs.JobStatus]) -> None:
    """"Compare settings": a multiselect of the listed runs and the table of their settings."""
    if not shown:
        return
    names = {run_id: note.name for run_id, note in notes.read_many(r.id for r in shown).items()}
    by_id = {r.id: r for r in shown}
    if "runs-pick" in st.session_state:  # a run filtered out or deleted since it was picked
        st.session_state["runs-pick"] = [rid for rid in st.session_state["runs-pick"] if rid in by_id]
    with st.expander("Compare settings", icon=":material/table_chart:"):
        picked = st.multiselect("Runs to compare", list(by_id), key="runs-pick",
                                format_func=lambda rid: run_label(by_id[rid], names.get(rid, "")),
                                placeholder="pick two or more runs")
        if not picked:
            st.caption("Pick runs to see their settings side by side, the ones that differ first.")
            return
        table = settings_table([by_id[rid] for rid in picked], names)
        n_differ = int(table["differs"].sum())
        st.caption(f"{len(picked)} runs · {n_differ} of {len(table)} settings differ (listed first)")
        st.dataframe(table, width="stretch", height=min(600, 38 + 35 * len(table)),
                     column_config={"differs": st.column_config.CheckboxColumn("differs", width="small")})
