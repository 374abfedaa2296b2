"""The explorer sidebar's "Compute on" widget (ui/trainability/cluster.py) in a tiny script: this machine by
default, the environment's scheduler as the default address, and a clear error (naming the setting) for an
address that is malformed or where no scheduler answers; in both error cases the view computes here. The
connected case (workers, cores, dashboard link) is tested against a real cluster in
tests/engine/trainability/test_cluster.py."""

from __future__ import annotations

import socket

from streamlit.testing.v1 import AppTest


def _script():
    import streamlit as st

    from ui.trainability.cluster import compute_on

    st.session_state["where"] = compute_on({})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(monkeypatch, env: str | None = None) -> AppTest:
    if env is None:
        monkeypatch.delenv("FRACTAL_LAB_DASK_SCHEDULER", raising=False)
    else:
        monkeypatch.setenv("FRACTAL_LAB_DASK_SCHEDULER", env)
    at = AppTest.from_function(_script, default_timeout=30).run()
    assert not at.exception
    return at


def test_this_machine_by_default(monkeypatch):
    at = _run(monkeypatch)
    assert at.radio(key="tx_compute_on").value == "This machine"
    assert at.session_state["where"] is None and not at.error and not at.text_input


def test_a_silent_scheduler_is_a_clear_error_and_computes_here(monkeypatch):
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    at = _run(monkeypatch, env=address)
    assert at.radio(key="tx_compute_on").value == "Dask cluster"
    assert at.text_input(key="tx_scheduler").value == address
    assert at.session_state["where"] is None
    [err] = at.error
    assert f"FRACTAL_LAB_DASK_SCHEDULER / --scheduler: no Dask scheduler answers at {address}" in err.value
    assert "computing on this machine" in err.value


def test_a_malformed_address_names_the_setting_and_the_form(monkeypatch):
    at = _run(monkeypatch)
    at.radio(key="tx_compute_on").set_value("Dask cluster").run()
    at.text_input(key="tx_scheduler").set_value("my laptop").run()
    assert not at.exception and at.session_state["where"] is None
    [err] = at.error
    assert "FRACTAL_LAB_DASK_SCHEDULER / --scheduler: must be 'local' or a Dask scheduler address" in err.value
    at.radio(key="tx_compute_on").set_value("This machine").run()
    assert not at.error and at.session_state["where"] is None


def test_a_bad_environment_value_is_reported_once(monkeypatch):
    at = _run(monkeypatch, env="http://cluster")
    [err] = at.error
    assert "FRACTAL_LAB_DASK_SCHEDULER" in err.value and "got 'http://cluster'" in err.value
    assert at.radio(key="tx_compute_on").value == "This machine"


def test_the_explorers_cost_line_says_a_cluster_is_not_estimated(fresh_store, monkeypatch):
    """The estimate is this machine's speed: with "Compute on" at a cluster the sidebar says so, not that the
    view takes that long there."""
    from tests.pages.conftest import open_page

    monkeypatch.delenv("FRACTAL_LAB_DASK_SCHEDULER", raising=False)
    at = open_page("pages/1_Trainability_Explorer.py", 120).run()
    cost = next(m.value for m in at.markdown if m.value.startswith("**Cost of this view:**"))
    assert cost.endswith("on this machine"), cost
    at.radio(key="tx_compute_on").set_value("Dask cluster").run()
    assert not at.exception, at.exception
    cost = next(m.value for m in at.markdown if m.value.startswith("**Cost of this view:**"))
    assert cost.endswith("on this machine (it runs on the Dask cluster, whose speed is not estimated)"), cost
