"""The sidebar's "Compute on": this machine, or a Dask cluster by its scheduler's address (issue 16).

Where a view computes never changes its pixels or its store key, so this is a plain setting beside the
experiment, not part of the link. The cluster's size is shown so one can tell a 64-core cluster from a
forgotten single worker; what the scheduler reports is cached for a few seconds, so a rerun of the page
(every click) does not reconnect.
"""

from __future__ import annotations

import os

import streamlit as st

from engine.trainability import cluster

LOCAL, DASK = "This machine", "Dask cluster"
INFO_TTL_S = 5
INFO_TIMEOUT_S = 2.0
DEFAULT_ADDRESS = "tcp://127.0.0.1:8786"


@st.cache_data(ttl=INFO_TTL_S, show_spinner=False, max_entries=16)
def _info(address: str) -> tuple[cluster.ClusterInfo | None, str | None]:
    """(what the scheduler reports, None) or (None, the error's message): errors are cached too, so an address
    that does not answer costs one timeout per INFO_TTL_S, not one per rerun."""
    try:
        return cluster.cluster_info(address, timeout_s=INFO_TIMEOUT_S), None
    except ValueError as exc:
        return None, str(exc)


def _initial() -> tuple[str, str, str | None]:
    """(choice, address text, error) from ``$FRACTAL_LAB_DASK_SCHEDULER`` for the first run of the session."""
    text = os.environ.get(cluster.ENV, "").strip()
    try:
        address = cluster.scheduler_address(text)
    except ValueError as exc:
        return LOCAL, DEFAULT_ADDRESS, str(exc)
    return (LOCAL, DEFAULT_ADDRESS, None) if address is None else (DASK, address, None)


def compute_on(state: dict | None = None) -> str | None:
    """Draw "Compute on" and return the scheduler address to compute on, or None for this machine (also when
    the cluster does not answer: then an error says so). Pass it on as ``runs.submit(..., options={"scheduler":
    address})``. ``state`` (the explorer's) is not needed yet: where a view runs is not part of the view."""
    if "tx_compute_on" not in st.session_state:
        choice, text, error = _initial()
        st.session_state["tx_compute_on"] = choice
        st.session_state["tx_scheduler"] = text
        if error:
            st.error(f"{error}; computing on this machine.", icon=":material/error:")
    st.radio("Compute on", (LOCAL, DASK), key="tx_compute_on", horizontal=True,
             help="Where this view's networks are trained. The pixels are the same either way. A Dask cluster "
                  "is a `dask scheduler` and its `dask worker` processes, on this machine or others (README: "
                  "*When one machine is not enough*).")
    if st.session_state["tx_compute_on"] != DASK:
        return None
    text = st.text_input("Dask scheduler address", key="tx_scheduler", placeholder=DEFAULT_ADDRESS,
                         help="tcp://HOST:PORT of a running `dask scheduler` (its default port is 8786). Set "
                              f"`{cluster.ENV}` to make it the default.")
    try:
        address = cluster.scheduler_address(text)
    except ValueError as exc:
        st.error(f"{exc}; computing on this machine.", icon=":material/error:")
        return None
    if address is None:
        return None
    info, error = _info(address)
    if info is None:
        st.error(f"{error}; computing on this machine.", icon=":material/cloud_off:")
        return None
    gpus = f" · {info.gpus} GPU{'s' if info.gpus != 1 else ''}" if info.gpus else ""
    st.caption(f":material/hub: {info.workers} worker{'s' if info.workers != 1 else ''} · {info.cores} "
               f"core{'s' if info.cores != 1 else ''}{gpus}")
    if info.workers == 0:
        st.warning("The scheduler has no workers yet: tasks wait until one joins.", icon=":material/hourglass_empty:")
    if info.dashboard_link:
        st.link_button("Dask dashboard", info.dashboard_link, icon=":material/monitoring:", width="stretch")
    return address
