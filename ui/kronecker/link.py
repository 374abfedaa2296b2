"""The lab's view as a link: the graph (``base``, ``names``, ``power``, ``second``, ``second_names``), the Train
tab's fields (``t_*``, named in the spec's field declarations), or a stored run (``run=<id>``, from the Runs page).

A link is read once per session; after that the widgets own the state and every run writes it back, so the
address bar always re-opens what is on screen.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.kronecker.spec import BASELINES, MAX_POWER, PRESETS, KronSpec, KronTrainSpec, default_names, parse_names
from engine.specs import FieldInfo, fields_of
from ui import state
from ui.downloads import copy_link
from ui.jobs import linked_status, short_id
from ui.kronecker import editor

RUN_PARAM = "run"
BASELINES_PARAM = "t_baselines"


def train_key(info: FieldInfo) -> str:
    """The widget key of a Train tab field: ``kt_`` + its link name (``t_edges`` -> ``kt_edges``)."""
    return "k" + info.param


def _graph_from_link(notes: list[str]) -> tuple[Any, ...]:
    qp = st.query_params
    base, names = [list(r) for r in PRESETS["example"].matrix], list(PRESETS["example"].names)
    if "base" in qp:
        try:
            base = editor.read_matrix(qp["base"], table=True)
        except ValueError as exc:
            notes.append(f"Link parameter ignored — {exc}")
        else:
            names = list(parse_names(qp["names"])) if "names" in qp else list(default_names(len(base)))
            if len(names) != len(base):  # keep the editor square; the spec's message still says what was wrong
                notes.append(f"Link parameter names: got {len(names)} names for {len(base)} nodes")
                names = (names + list(default_names(len(base))))[: len(base)]
    power = 2
    if "power" in qp:
        try:
            power = int(qp["power"])
        except ValueError:
            notes.append(f"Link parameter power ignored: {qp['power']!r} is not an integer")
        power = min(max(power, 1), MAX_POWER)
    second = second_names = None
    if "second" in qp:
        try:
            second = editor.read_matrix(qp["second"], "second", table=True)
        except ValueError as exc:
            notes.append(f"Link parameter ignored — {exc}")
        else:
            second_names = (list(parse_names(qp["second_names"])) if "second_names" in qp
                            else list(editor.SECOND_LETTERS[: len(second)]))
            second_names = (second_names + list(editor.SECOND_LETTERS))[: len(second)]
    return base, names, power, second, second_names


def _train_from_link() -> tuple[dict[str, Any], list[str]]:
    defaults = {info.name: info.default for info in fields_of(KronTrainSpec)}
    values, errors = state.parse_spec_query(KronTrainSpec, st.query_params, defaults)
    values["baselines"] = list(BASELINES)
    if BASELINES_PARAM in st.query_params:
        values["baselines"] = [b for b in st.query_params[BASELINES_PARAM].split(",") if b in BASELINES]
    return values, errors


def _opened_run(notes: list[str]) -> KronTrainSpec | None:
    """The spec of the stored run that ``?run=<id>`` names (None, with a note, if there is no such run)."""
    if RUN_PARAM not in st.query_params:
        return None
    run_id = st.query_params[RUN_PARAM]
    status, why = linked_status(run_id)
    if status is None or status.kind != "kron_train" or not status.spec:
        why = why or f"`{short_id(run_id)}` is not a stored Kronecker training run"
        notes.append(f"Link parameter run ignored: {why}")
        return None
    try:
        spec = KronTrainSpec.from_dict(status.spec)
    except (TypeError, ValueError) as exc:
        notes.append(f"Link parameter run ignored: its setup cannot be read here ({exc})")
        return None
    ss = st.session_state
    ss.kt_run, ss.kt_run_spec = run_id, spec.to_json()
    return spec


def _address() -> dict[str, str]:
    return {k: st.query_params[k] for k in st.query_params.keys()}


def init_state() -> None:
    """Fill the editors and the Train tab from the link (or a stored run): on the session's first visit, and again
    whenever the page is opened on another address than the one it last wrote (a run's "Open in" link from the
    Runs page). Arriving from the sidebar (no address) keeps what the session had on screen."""
    ss = st.session_state
    address = _address()
    if ss.get("kr_init") and (not address or address == ss.get("kr_address")):
        return
    ss.pop("kt_run", None)
    ss.pop("kt_run_spec", None)
    notes: list[str] = []
    run = _opened_run(notes)
    if run is not None:
        g = run.graph
        editor.init_editors(g.base, g.names, g.power, g.second, g.second_names)
        train, errors = run.to_dict(), []
    else:
        editor.init_editors(*_graph_from_link(notes))
        train, errors = _train_from_link()
    for info in fields_of(KronTrainSpec):
        ss[train_key(info)] = train[info.name]
    ss.kt_baselines = list(train["baselines"])
    ss.kr_link_notes, ss.kt_link_errors = notes, errors
    ss.kr_init = True


def opened_run(spec: KronTrainSpec) -> str | None:
    """The id of the run the link opened, while the Train tab still shows exactly its setup."""
    ss = st.session_state
    return ss.get("kt_run") if ss.get("kt_run_spec") == spec.to_json() else None


def opening_tab() -> str | None:
    """The tab to show first: the Train tab (with the run's results) when the link named a stored run."""
    return "Train" if st.session_state.get("kt_run") else None


def link_notes() -> list[str]:
    return list(st.session_state.get("kr_link_notes") or [])


def train_link_errors() -> list[str]:
    return list(st.session_state.get("kt_link_errors") or [])


def write_graph(spec: KronSpec) -> None:
    """The graph on screen into the address bar."""
    values = {"base": [list(r) for r in spec.base], "names": ",".join(spec.names),
              **state.spec_query(KronSpec, spec.to_dict()),
              "second": [list(r) for r in spec.second] if spec.second is not None else None,
              "second_names": ",".join(spec.second_names) if spec.second_names is not None else None}
    state.write_query_params(values, defaults={"second": None, "second_names": None})


def _train_query(spec: KronTrainSpec) -> dict[str, str]:
    query = state.spec_query(KronTrainSpec, spec.to_dict())
    query[BASELINES_PARAM] = ",".join(spec.baselines)
    return query


def write_train(spec: KronTrainSpec) -> None:
    """The Train tab's setup into the address bar (fields at their defaults are left out); ``run`` stays only
    while the setup is still the opened run's."""
    state.write_query_params(_train_query(spec), defaults=_train_query(KronTrainSpec(graph=spec.graph)))
    if opened_run(spec) is None and RUN_PARAM in st.query_params:
        del st.query_params[RUN_PARAM]


def copy_link_section() -> None:
    """"Copy link": the address that re-opens this graph and Train setup. Last in a run, after both were written;
    the address is remembered, so that a later run can tell a link the user opened from the page's own writing."""
    copy_link(label="Copy link", help="A link that re-opens this graph and its Train settings")
    st.session_state.kr_address = _address()
