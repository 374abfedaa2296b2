"""The graph editors: the base graph (preset, size, table, paste box) and how it grows (power, a second graph).

Each editor's source table lives in ``st.session_state`` under a prefix (``kr`` base, ``kr2`` second); a new
version number re-creates the ``st.data_editor`` whenever a preset, a resize or a paste replaces the table.
Every rule about what a valid graph is belongs to :class:`engine.kronecker.spec.KronSpec`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from engine.kronecker.spec import (MAX_BASE_NODES, PRESETS, KronSpec, default_names, parse_matrix, parse_names,
                                   read_table)
from ui.spec_form import spec_input

SECOND_LETTERS = "xyzwuvtsrqponmlk"
CUSTOM = "(custom)"
#: Streamlit forgets a widget that is not drawn (the second graph's while it is off, all of them on another page)
#: and the browser redraws it at its minimum: every editor widget keeps its value for the session.
KEEP = "session"


def second_preset(name: str) -> tuple[list[list[float]], list[str]]:
    """A preset used as the second graph, renamed x, y, z... so its layers differ from the base's."""
    p = PRESETS[name]
    return [list(r) for r in p.matrix], list(SECOND_LETTERS[: len(p.names)])


def matching_preset(matrix, names, second: bool = False) -> str:
    for name, p in PRESETS.items():
        want_names = list(SECOND_LETTERS[: len(p.names)]) if second else list(p.names)
        try:
            if np.array_equal(np.asarray(matrix, dtype=float), np.asarray(p.matrix, dtype=float)) and \
                    list(names) == want_names:
                return name
        except (TypeError, ValueError):
            pass
    return CUSTOM


def init_editors(base, names, power: int, second=None, second_names=None) -> None:
    """Fill both editors (from a link, a stored run or the defaults)."""
    ss = st.session_state
    use_second = second is not None
    if second is None:
        second, second_names = second_preset("two-node")
    # A new table version: a data editor drawn before (an earlier link) must not replay its edits onto this table.
    ss.kr_src, ss.kr_ver, ss.kr_n = {"base": [list(r) for r in base], "names": list(names)}, \
        ss.get("kr_ver", -1) + 1, len(base)
    ss.kr2_src, ss.kr2_ver, ss.kr2_n = {"base": [list(r) for r in second], "names": list(second_names)}, \
        ss.get("kr2_ver", -1) + 1, len(second)
    ss.kr_preset = matching_preset(base, names)
    ss.kr2_preset = matching_preset(second, second_names, second=True)
    ss.kr_power, ss.kr_use2 = power, use_second


def _set_source(prefix: str, base, names) -> None:
    ss = st.session_state
    ss[f"{prefix}_src"] = {"base": [list(r) for r in base], "names": list(names)}
    ss[f"{prefix}_ver"] += 1
    ss[f"{prefix}_n"] = len(base)
    ss[f"{prefix}_preset"] = matching_preset(base, names, second=prefix == "kr2")


def _on_preset(prefix: str) -> None:
    name = st.session_state[f"{prefix}_preset"]
    if name == CUSTOM:
        return
    if prefix == "kr2":
        _set_source(prefix, *second_preset(name))
    else:
        p = PRESETS[name]
        _set_source(prefix, [list(r) for r in p.matrix], list(p.names))


def _on_resize(prefix: str) -> None:
    """Grow or shrink the table, keeping the top-left block; a new node runs a layer and reads the last one."""
    ss = st.session_state
    n = int(ss[f"{prefix}_n"])
    cur = ss.get(f"{prefix}_cur") or ss[f"{prefix}_src"]
    old, names = cur["base"], list(cur["names"])
    m = [[(old[i][j] if i < len(old) and j < len(old) else 0.0) for j in range(n)] for i in range(n)]
    letters = SECOND_LETTERS if prefix == "kr2" else "abcdefghijklmnop"
    for i in range(len(old), n):
        m[i][i] = 1.0
        if i > 0:
            m[i][i - 1] = 1.0
        names.append(next((c for c in letters if c not in names), f"L{i + 1}"))
    _set_source(prefix, m, names[:n])


def read_matrix(text: str, field: str = "base", table: bool = False) -> list[list]:
    """The engine's matrix reader (``read_table`` for an editor, else ``parse_matrix``), with JSON nested deeper
    than Python's parser goes (``"[" * 100000`` in a link or the paste box) as a ``ValueError`` naming the field,
    like any other unreadable matrix."""
    try:
        return read_table(text, field) if table else parse_matrix(text, field)
    except RecursionError:
        raise ValueError(f"{field}: nested too deeply to be a matrix; write it as [[1,0],[1,1]] or '1 0; 1 1'") \
            from None


def _on_paste() -> None:
    ss = st.session_state
    ss.kr_paste_error = None
    try:
        m = read_matrix(ss.get("kr_paste", ""))
        text = ss.get("kr_paste_names", "").strip()
        names = list(parse_names(text)) if text else list(default_names(len(m)))
        KronSpec(base=m, names=names, power=1)  # the engine's validation, with its own messages
    except ValueError as exc:
        ss.kr_paste_error = str(exc)
        return
    _set_source("kr", m, names)


def _matrix_editor(prefix: str) -> tuple[list[list[float | None]], list[str | None]]:
    """The matrix and layer names in one table; returns what the table holds now (empty cells as None)."""
    ss = st.session_state
    src = ss[f"{prefix}_src"]
    n = len(src["base"])
    cols = [f"X{j + 1}" for j in range(n)]
    df = pd.DataFrame([[float(v) if v is not None else None for v in row] for row in src["base"]],
                      columns=cols, index=cols, dtype=float)
    df.insert(0, "layer", list(src["names"]))
    config = {"layer": st.column_config.TextColumn("layer", help="the layer this node runs", max_chars=16)}
    for j, c in enumerate(cols):
        config[c] = st.column_config.NumberColumn(c, help=f"weight of node X{j + 1} in each row's input sum "
                                                  "(diagonal: run this row's layer if non-zero)")
    edited = st.data_editor(df, key=f"{prefix}_editor_{ss[f'{prefix}_ver']}", column_config=config,
                            num_rows="fixed", width="content")
    values = edited[cols].to_numpy(dtype=float, na_value=np.nan)
    matrix = [[None if math.isnan(v) else float(v) for v in row] for row in values]
    names = [None if (x is None or (isinstance(x, float) and math.isnan(x))) else str(x).strip()
             for x in edited["layer"].tolist()]
    ss[f"{prefix}_cur"] = {"base": [[0.0 if v is None else v for v in r] for r in matrix], "names": names}
    return matrix, names


def base_graph_editor() -> tuple[list, list]:
    """Preset, number of nodes, the matrix table and a paste box; returns the base matrix and its names."""
    ss = st.session_state
    st.subheader("Base graph")
    c1, c2 = st.columns([2, 1])
    c1.selectbox("Preset", list(PRESETS) + [CUSTOM], key="kr_preset", on_change=_on_preset, args=("kr",),
                 help="; ".join(f"{k}: {p.about}" for k, p in PRESETS.items()), persist_state=KEEP)
    c2.number_input("Nodes", 1, MAX_BASE_NODES, key="kr_n", on_change=_on_resize, args=("kr",), persist_state=KEEP)
    matrix, names = _matrix_editor("kr")
    now = matching_preset(matrix, names)
    if now != ss.kr_preset:
        st.caption(f"Edited: this is now {'the ' + repr(now) + ' preset' if now != CUSTOM else 'a custom graph'}.")
    with st.expander("Paste a matrix"):
        st.text_area("Matrix (JSON rows or `1 0; 1 1`)", key="kr_paste", height=90,
                     placeholder="[[1,0,0],[1,1,0],[1,1,1]]")
        st.text_input("Layer names", key="kr_paste_names", placeholder="abc  or  conv,mlp,attn")
        st.button("Apply", key="kr_paste_apply", on_click=_on_paste)
        if ss.get("kr_paste_error"):
            st.error(ss.kr_paste_error)
    return matrix, names


def grow_controls() -> tuple[int, list | None, list | None]:
    """The Kronecker power and an optional second graph; returns ``(power, second matrix, second names)``."""
    ss = st.session_state
    st.subheader("Grow it")
    power = spec_input(KronSpec, "power", key="kr_power", persist_state=KEEP)
    st.checkbox("Then multiply by a second graph (multi-fractal)", key="kr_use2", persist_state=KEEP)
    if not ss.kr_use2:
        return int(power), None, None
    d1, d2 = st.columns([2, 1])
    d1.selectbox("Second graph preset", list(PRESETS) + [CUSTOM], key="kr2_preset", on_change=_on_preset,
                 args=("kr2",), persist_state=KEEP)
    d2.number_input("Nodes", 1, MAX_BASE_NODES, key="kr2_n", on_change=_on_resize, args=("kr2",),
                    persist_state=KEEP)
    second, second_names = _matrix_editor("kr2")
    return int(power), second, second_names


def graph_spec(base, names, power: int, second, second_names) -> KronSpec | None:
    """The spec of the graph on screen, or None after showing why the engine refuses it."""
    try:
        return KronSpec(base=base, names=names, power=power, second=second, second_names=second_names)
    except ValueError as exc:
        st.error(f"**This graph cannot be built.** {exc}")
        return None
