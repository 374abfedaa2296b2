"""AppTest of the Kronecker lab page: presets, power, second graph, bad matrices, link state, big graphs, training."""

from __future__ import annotations


import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import open_page

PAGE = "pages/3_Kronecker_Lab.py"


def _app(**query) -> AppTest:
    return open_page(PAGE, 120, **query).run()


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _codes(at) -> str:
    return "\n".join(c.value for c in at.code)


def _errors(at) -> str:
    return "\n".join(e.value for e in at.error)


def test_default_is_the_worked_example():
    at = _app()
    assert not at.exception
    m = _metrics(at)
    assert (m["Nodes"], m["Edges"], m["Streams"], m["Applications"], m["Layers"]) == ("9", "27", "2", "18", "3")
    code = _codes(at)
    assert "X1 = (a(input), a(input))\nX2 = (a(X1), b(X1))\nX3 = (a(X1 + X2), c(X1 + X2))" in code
    assert "aaabbbccc" in code and "abcabcabc" in code
    assert at.query_params["base"] == "1,0,0;1,1,0;1,1,1"
    assert at.query_params["names"] == "a,b,c" and at.query_params["power"] == "2"
    assert at.button(key="kt_train").label.endswith("Train")


def test_presets_change_the_graph():
    at = _app()
    at.selectbox(key="kr_preset").set_value("chain").run()
    assert not at.exception
    m = _metrics(at)
    assert (m["Nodes"], m["Edges"]) == ("9", "16")
    assert at.query_params["base"] == "1,0,0;1,1,0;0,1,1"
    at.selectbox(key="kr_preset").set_value("dense triangle").run()
    assert _metrics(at)["Nodes"] == "16" and at.number_input(key="kr_n").value == 4
    at.selectbox(key="kr_preset").set_value("two-node").run()
    assert _metrics(at)["Nodes"] == "4"
    assert "abab" in _codes(at) and "aabb" in _codes(at)


def test_power_change_and_node_resize():
    at = _app()
    at.number_input(key="kr_power").set_value(3).run()
    assert not at.exception
    m = _metrics(at)
    assert (m["Nodes"], m["Streams"], m["Applications"]) == ("27", "3", "81")
    assert at.query_params["power"] == "3"
    at.number_input(key="kr_power").set_value(1).run()
    assert _metrics(at)["Nodes"] == "3"
    assert "X3 = c(X1 + X2)" in _codes(at)
    at.number_input(key="kr_n").set_value(4).run()  # a new node d runs a layer and reads c
    assert not at.exception
    assert "X4 = d(X3)" in _codes(at)
    assert at.query_params["names"] == "a,b,c,d"


def test_bad_matrix_from_paste_shows_the_engine_message():
    at = _app()
    at.text_area(key="kr_paste").set_value("[[1,1],[0,1]]")
    at.text_input(key="kr_paste_names").set_value("ab")
    at.button(key="kr_paste_apply").click().run()
    assert not at.exception
    assert "base: entry at row 1, column 2 = 1 is above the diagonal" in _errors(at)
    assert _metrics(at)["Nodes"] == "9"  # the graph on screen is unchanged
    at.text_area(key="kr_paste").set_value("1 0; 1 1")
    at.button(key="kr_paste_apply").click().run()
    assert not _errors(at)
    assert _metrics(at)["Nodes"] == "4"
    at.text_area(key="kr_paste").set_value("[[1,0],[1,1],[1,1]]")
    at.button(key="kr_paste_apply").click().run()
    assert "base: must be square" in _errors(at)


@pytest.mark.parametrize(
    "base, names, message",
    [
        ("1,1;0,1", "a,b", "base: entry at row 1, column 2 = 1 is above the diagonal"),
        ("1,0;nan,1", "a,b", "base: entry at row 2, column 1 is empty; all entries must be finite"),
    ],
)
def test_bad_matrix_from_link_shows_the_engine_message(base, names, message):
    at = _app(base=base, names=names)
    assert not at.exception
    assert message in _errors(at)
    assert not at.metric  # nothing is drawn from an invalid graph


def test_link_with_too_many_names_says_so_and_keeps_the_matrix():
    at = _app(base="1,0;1,1", names="a,b,c")
    assert not at.exception
    assert any("names: got 3 names for 2 nodes" in w.value for w in at.warning)
    assert _metrics(at)["Nodes"] == "4"


@pytest.mark.parametrize("base, message", [("1,0;1", "base: must be square"),
                                           ('[[1,0],["x",1]]', "base: entry at row 2, column 1 is 'x'"),
                                           ("[[1,0],", "base: could not read the matrix as JSON")])
def test_unreadable_link_falls_back_with_a_note(base, message):
    at = _app(base=base)
    assert not at.exception
    assert any(message in w.value for w in at.warning)
    assert _metrics(at)["Nodes"] == "9"


def test_link_restores_the_setup_and_second_graph():
    at = _app(base="1,0;1,1", names="p,q", power="1", second="1,0,0;1,1,0;0,1,1", second_names="x,y,z")
    assert not at.exception
    assert at.checkbox(key="kr_use2").value is True
    m = _metrics(at)
    assert (m["Nodes"], m["Streams"]) == ("6", "2")
    assert "X2 = (p(X1), y(X1))" in _codes(at)
    at.checkbox(key="kr_use2").uncheck().run()
    assert _metrics(at)["Nodes"] == "2"
    assert "second" not in at.query_params


def test_second_graph_toggle():
    at = _app()
    at.number_input(key="kr_power").set_value(1).run()
    at.checkbox(key="kr_use2").check().run()
    assert not at.exception
    m = _metrics(at)
    assert (m["Nodes"], m["Streams"], m["Layers"]) == ("6", "2", "5")
    assert at.query_params["second"] == "1,0;1,1" and at.query_params["second_names"] == "x,y"


def test_too_big_power_is_refused_with_its_range():
    at = _app()
    at.number_input(key="kr_power").set_value(9).run()
    assert not at.exception
    assert "power: 9 grows this base to 19,683 nodes" in _errors(at)


def test_big_graph_is_downsampled_with_notes_and_paged():
    at = _app(power="8")
    assert not at.exception
    assert _metrics(at)["Nodes"] == "6,561"
    infos = "\n".join(i.value for i in at.info)
    assert "Downsampled for drawing: 6,561 nodes" in infos
    assert "too many to draw one by one" in infos
    pager = at.number_input(key="kr_eq_page")
    assert pager.max == 165
    pager.set_value(165).run()
    assert "X6561 = (c(X1 + X2" in _codes(at)
    assert any("sparse triples" in c.value for c in at.caption)


def test_train_tab_starts_a_job_and_shows_its_result():
    import runs
    from cache import default_store
    from engine.kronecker.spec import KronSpec, KronTrainSpec

    at = _app(base="1,0;1,1", names="a,b", power="1")
    at.number_input(key="kt_epochs").set_value(1)
    at.number_input(key="kt_width").set_value(8)
    at.selectbox(key="kt_edges").set_value("static")
    at.multiselect(key="kt_baselines").set_value(["base"])
    at.run()
    assert not at.exception
    assert at.query_params["t_width"] == "8" and at.query_params["t_baselines"] == "base"
    assert at.query_params["t_edges"] == "static"
    at.button(key="kt_train").click().run()
    assert not at.exception
    spec = KronTrainSpec(graph=KronSpec(base=[[1, 0], [1, 1]], names="ab", power=1), epochs=1, width=8,
                         edge_weights="static", baselines=("base",))
    job_id = default_store().key("kron_train", spec)
    assert at.session_state["kt_job"] == job_id
    status = runs.status(job_id)
    assert status is not None and status.state in ("queued", "running", "done")
    assert any("Training" in md.value for md in at.markdown) or status.state == "done"

    final = runs.wait(job_id, timeout=240)
    assert final.state == "done", final
    at.run()  # what the live fragment's rerun does once the job has finished
    assert not at.exception
    tables = [d.value for d in at.dataframe if "model" in getattr(d.value, "columns", [])]
    assert len(tables) == 1
    table = tables[0]
    assert list(table["model"]) == ["kron_tied", "base"]
    assert set(table.columns) >= {"parameters", "layer_applications", "test_accuracy", "train_time_s"}
    assert at.selectbox(key="kt_ew_model").value == "kron_tied"
    assert "kt_train" not in [b.key for b in at.button]  # a finished setup is read from the store, not re-run
    assert any("checkpoint_kron_tied" in (b.proto.label or "") or "kron_tied" in (b.proto.label or "")
               for b in at.get("download_button"))


def test_a_stored_run_reopens_from_its_link():
    """The Runs page opens a kron_train run as ``?run=<id>``: its graph, its setup and its results come back."""
    import runs
    from engine.kronecker.spec import KronSpec, KronTrainSpec

    spec = KronTrainSpec(graph=KronSpec(base=[[1, 0], [1, 1]], names="pq", power=2), epochs=1, width=8,
                         batch_size=512, edge_weights="static", baselines=("base",), seed=3)
    job_id = runs.submit("kron_train", spec)
    assert runs.wait(job_id, timeout=240).state == "done"

    at = _app(run=job_id)
    assert not at.exception
    assert not at.warning and not at.error
    m = _metrics(at)
    assert (m["Nodes"], m["Streams"], m["Applications"]) == ("4", "2", "8")
    assert at.number_input(key="kr_power").value == 2
    assert at.query_params["names"] == "p,q" and at.query_params["run"] == job_id
    assert at.number_input(key="kt_seed").value == 3 and at.number_input(key="kt_width").value == 8
    assert at.selectbox(key="kt_edges").value == "static" and at.multiselect(key="kt_baselines").value == ["base"]
    tables = [d.value for d in at.dataframe if "model" in getattr(d.value, "columns", [])]
    assert len(tables) == 1 and list(tables[0]["model"]) == ["kron_tied", "base"]
    assert "kt_train" not in [b.key for b in at.button]  # the stored result is shown, nothing is trained again

    at.number_input(key="kt_seed").set_value(4).run()  # another setup: the link stops naming the run
    assert not at.exception
    assert "run" not in at.query_params and at.query_params["t_seed"] == "4"
    assert at.button(key="kt_train").label.endswith("Train")


def test_a_link_to_an_unknown_run_says_so_and_opens_the_default():
    at = _app(run="kron_train-0123456789abcdef0123")
    assert not at.exception
    assert any("is not a stored Kronecker training run" in w.value for w in at.warning)
    assert _metrics(at)["Nodes"] == "9"
