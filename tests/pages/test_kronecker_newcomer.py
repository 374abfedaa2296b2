"""AppTest of the Kronecker lab as a newcomer finds it (issue 13): settings that survive an invalid graph, a Copy
link that re-opens the view, node names on the label matrix, no overlapping data-flow labels, icons not emoji."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.pages.conftest import open_page

PAGE = "pages/3_Kronecker_Lab.py"
POWER = "kr_power"
TRAIN_SETTINGS = {"kt_width": 64, "kt_epochs": 7, "kt_lr": 0.01, "kt_batch": 128}


def _app(**query) -> AppTest:
    return open_page(PAGE, 120, **query).run()


def shown(widget):
    """The value the browser draws for a widget it mounts afresh: the value the server sends with the element
    (``set_value``), else the element's default. Streamlit's frontend forgets a widget that was not drawn, so after
    an invalid graph (the page stops before the tabs) this is what the user sees and what the next click sends."""
    p = widget.proto
    if widget.type == "multiselect":
        chosen = p.raw_values if p.set_value else [p.options[i] for i in p.default]
        return list(chosen)
    return p.value if p.set_value else p.default


def _train_caption(at) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Train runs"))


def test_train_settings_survive_an_invalid_graph_and_the_caption_says_what_train_runs():
    at = _app()
    for key, value in TRAIN_SETTINGS.items():
        at.number_input(key=key).set_value(value)
    at.multiselect(key="kt_baselines").set_value(["base"])
    at.run()
    assert not at.exception

    at.number_input(key=POWER).set_value(9).run()  # too big: the page stops before the tabs
    assert any("cannot be built" in e.value for e in at.error)
    assert not at.multiselect  # the Train tab is not drawn at all
    at.number_input(key=POWER).set_value(2).run()  # valid again: the tabs are drawn afresh
    assert not at.exception

    for key, value in TRAIN_SETTINGS.items():
        widget = at.number_input(key=key)
        assert widget.value == value and shown(widget) == value, key
    baselines = at.multiselect(key="kt_baselines")
    assert baselines.value == ["base"] and shown(baselines) == ["base"]
    caption = _train_caption(at)
    for text in ("kron_tied, base ", "width 64", "7 epochs", "lr 0.01", "batch 128"):
        assert text in caption, (text, caption)
    assert "sequential" not in caption
    assert at.query_params["t_width"] == "64" and at.query_params["t_baselines"] == "base"


def test_the_second_graph_keeps_its_settings_while_it_is_off():
    at = _app()
    at.checkbox(key="kr_use2").check().run()
    at.selectbox(key="kr2_preset").set_value("example").run()
    assert at.number_input(key="kr2_n").value == 3
    at.checkbox(key="kr_use2").uncheck().run()
    at.checkbox(key="kr_use2").check().run()
    assert not at.exception
    nodes = at.number_input(key="kr2_n")
    assert nodes.value == 3 and shown(nodes) == 3
    assert at.selectbox(key="kr2_preset").value == "example"
    assert at.query_params["second"] == "1,0,0;1,1,0;1,1,1"


def test_the_graph_and_train_settings_survive_a_visit_to_another_page():
    at = _app()
    at.number_input(key=POWER).set_value(3).run()
    at.number_input(key="kr_n").set_value(4).run()
    at.number_input(key="kt_width").set_value(64).run()
    nodes = next(m.value for m in at.metric if m.label == "Nodes")
    at.switch_page("app.py").run()
    at.switch_page(PAGE).run()
    assert not at.exception
    for key, value in (("kr_n", 4), (POWER, 3), ("kt_width", 64)):
        widget = at.number_input(key=key)
        assert widget.value == value and shown(widget) == value, key
    assert next(m.value for m in at.metric if m.label == "Nodes") == nodes == "64"


def _copied_link(at) -> str:
    codes = [c.value for c in at.sidebar.code if "base=" in c.value]
    assert len(codes) == 1, [c.value for c in at.code]
    return codes[0]


def _view(at) -> dict:
    keys = ("kr_power", "kr_n", "kt_width", "kt_epochs", "kt_lr", "kt_batch", "kt_seed")
    return {"metrics": {m.label: m.value for m in at.metric}, "use2": at.checkbox(key="kr_use2").value,
            "baselines": at.multiselect(key="kt_baselines").value, "edges": at.selectbox(key="kt_edges").value,
            "equations": [c.value for c in at.code if c.value.startswith("X1 =")],
            **{k: at.number_input(key=k).value for k in keys}}


def test_copy_link_reopens_the_same_graph_and_train_settings():
    from urllib.parse import parse_qsl, urlparse

    at = _app()
    at.selectbox(key="kr_preset").set_value("chain").run()
    at.number_input(key=POWER).set_value(1).run()
    at.checkbox(key="kr_use2").check().run()
    for key, value in TRAIN_SETTINGS.items():
        at.number_input(key=key).set_value(value)
    at.selectbox(key="kt_edges").set_value("static")
    at.multiselect(key="kt_baselines").set_value(["sequential"])
    at.run()
    assert not at.exception
    url = _copied_link(at)
    query = dict(parse_qsl(urlparse(url).query))
    assert query["second"] == "1,0;1,1" and query["t_width"] == "64" and query["t_baselines"] == "sequential"

    again = _app(**query)
    assert not again.exception and not again.warning
    assert _view(again) == _view(at)
    assert _copied_link(again) == url


def _label_matrix(at):
    """The label matrix: the one table that is neither an editor nor a result (AppTest shows no dataframe key)."""
    frames = [d.value for d in at.dataframe if not (d.key or "").startswith("kr") and "model" not in d.value]
    assert len(frames) == 1
    return frames[0]


def test_the_label_matrix_is_headed_by_node_names():
    at = _app()
    frame = _label_matrix(at)
    names = ["aa", "ab", "ac", "ba", "bb", "bc", "ca", "cb", "cc"]
    assert list(frame.columns) == names and list(frame.index) == names
    assert frame.loc["bc", "ab"] == "ab" and frame.loc["ab", "bc"] == ""
    at.number_input(key=POWER).set_value(1).run()
    frame = _label_matrix(at)
    assert list(frame.columns) == ["a", "b", "c"] and frame.loc["c", "b"] == "b"


def test_node_names_that_repeat_keep_rows_and_columns_distinct():
    at = _app(base="1,0;1,1", names="a,aa", power="2")
    frame = _label_matrix(at)
    assert list(frame.columns) == ["aa", "aaa (X2)", "aaa (X3)", "aaaa"]


# ------------------------------------------------------------------------------------- data-flow labels
def _arr(value):
    """A figure JSON's array: a list, or plotly's typed array ``{"dtype", "bdata"[, "shape"]}``."""
    import base64

    import numpy as np

    if isinstance(value, dict) and "bdata" in value:
        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return a.reshape([int(x) for x in str(value["shape"]).split(",")]) if "shape" in value else a
    return np.asarray(value, dtype=float)


def _boxes(fig: dict, plot_width: float):
    """Every dot and every text of a data-flow figure as a box in CSS px at ``plot_width`` (the narrowest plot
    area the lab's layout gives the chart): rows of (x0, x1, y0, y1, point id, is text). Text boxes are as wide
    as :data:`engine.kronecker.drawing.CHAR_EM` em per character and one line high."""
    import numpy as np

    from engine.kronecker.drawing import CHAR_EM, LINE_EM

    lay, traces = fig["layout"], [t for t in fig["data"] if t.get("name") != "edges"]
    xs = np.concatenate([_arr(t["x"]) for t in traces])
    ys = np.concatenate([_arr(t["y"]) for t in traces])
    # A figure without explicit ranges is autoranged by plotly: the data's extent plus about half a unit.
    x0, x1 = lay.get("xaxis", {}).get("range") or (xs.min() - 0.5, xs.max() + 0.5)
    y0, y1 = lay.get("yaxis", {}).get("range") or (ys.min() - 0.5, ys.max() + 0.5)
    m = lay.get("margin", {})
    plot_h = lay["height"] - m.get("t", 100) - m.get("b", 80)
    sx, sy = plot_width / (x1 - x0), plot_h / (y1 - y0)
    rows = []
    for ti, t in enumerate(traces):
        mode = t.get("mode", "")
        size = (t.get("marker") or {}).get("size", 6)
        font = (t.get("textfont") or {}).get("size", 12)
        texts = t.get("text") if "text" in mode else None
        for i, (x, y) in enumerate(zip(_arr(t["x"]).tolist(), _arr(t["y"]).tolist())):
            px, py = (x - x0) * sx, (y1 - y) * sy
            owner = (ti, i) if mode != "text" else ("name", i)
            if "markers" in mode:
                rows.append((px - size / 2, px + size / 2, py - size / 2, py + size / 2, owner, False))
            if texts:
                w, h = CHAR_EM * font * len(str(texts[i])), LINE_EM * font
                rows.append((px - w / 2, px + w / 2, py - h / 2, py + h / 2, owner, True))
    return rows


def overlapping_labels(fig: dict, plot_width: float) -> list[tuple]:
    """Pairs of boxes that overlap where one of them is a text: a letter or a name over another dot or text (a
    letter inside its own dot is what the dot is for)."""
    import numpy as np

    rows = _boxes(fig, plot_width)
    b = np.array([r[:4] for r in rows], float)
    is_text = np.array([r[5] for r in rows])
    owners = [r[4] for r in rows]
    hit = ((b[:, None, 0] < b[None, :, 1]) & (b[None, :, 0] < b[:, None, 1]) &
           (b[:, None, 2] < b[None, :, 3]) & (b[None, :, 2] < b[:, None, 3]))
    bad = []
    for i, j in zip(*np.nonzero(np.triu(hit, 1))):
        if (is_text[i] or is_text[j]) and owners[i] != owners[j]:
            bad.append((rows[i], rows[j]))
    return bad


def _dataflow_spec(at) -> dict:
    import json

    return next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if el.proto.id.endswith("kr_dataflow"))


def test_power_4_data_flow_labels_do_not_overlap_and_every_name_is_in_the_hover():
    from engine.kronecker.drawing import PLOT_WIDTH

    at = _app(power="4")
    assert not at.exception
    fig = _dataflow_spec(at)
    assert overlapping_labels(fig, PLOT_WIDTH) == []
    hover = {row[0] for t in fig["data"] if t.get("customdata") for row in t["customdata"]}
    assert len(hover) == 81 and {"aaaa", "abca", "cccc"} <= hover


def _graphs():
    from engine.kronecker.spec import KronSpec

    yield "example^1..4", [KronSpec.from_preset("example", k) for k in (1, 2, 3, 4)]
    yield "presets^3", [KronSpec.from_preset(name, 3) for name in ("chain", "two-node", "dense triangle")]
    yield "two-node^7 (128 nodes, 7 streams)", [KronSpec.from_preset("two-node", 7)]
    yield "long names", [KronSpec(base=[[1, 0, 0], [1, 1, 0], [0, 1, 1]], names=("conv", "mlp", "attn"), power=k)
                         for k in (1, 2, 3)]
    yield "with a second graph", [KronSpec(base=[[1, 0], [1, 1]], names="ab", power=3, second=[[1, 0], [0, 1]],
                                           second_names="xy")]
    yield "pass-through nodes", [KronSpec(base=[[1, 0, 0], [1, 0, 0], [0, 1, 1]], names="abc", power=k)
                                 for k in (2, 3, 4)]


def test_no_data_flow_label_overlaps_another_for_any_drawable_graph():
    import json

    from engine.kronecker.drawing import PLOT_WIDTH, dataflow_is_summary
    from ui.kronecker.figures import dataflow_figure

    for what, specs in _graphs():
        for spec in specs:
            graph = spec.build()
            if dataflow_is_summary(graph):
                continue
            fig = json.loads(dataflow_figure(graph)[0].to_json())
            assert overlapping_labels(fig, PLOT_WIDTH) == [], (what, spec.describe())


def test_small_graphs_keep_letters_in_their_dots_and_names_above():
    from engine.kronecker.drawing import dataflow_drawing
    from engine.kronecker.spec import KronSpec

    d = dataflow_drawing(KronSpec.from_preset("example", 2).build())
    assert d.letter_px > 0 and d.streams[0].letters[:3] == ("a", "a", "a") and d.names[:2] == ("aa", "ab")


# ------------------------------------------------------------------------------------- downloads = the charts
def _chart(at, key: str) -> dict:
    import json

    return next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if el.proto.id.endswith(key))


def test_the_page_charts_draw_the_descriptions_the_png_downloads_render():
    import numpy as np

    from engine.kronecker import drawing
    from engine.kronecker.spec import KronSpec

    at = _app(base="1,0,0;1,0,0;0,1,1", names="a,b,c", power="3")  # b passes: open dots
    graph = KronSpec(base=[[1, 0, 0], [1, 0, 0], [0, 1, 1]], names="abc", power=3).build()
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"dataflow.png", "adjacency.png"} <= set(labels)
    assert not any("⬇" in label for label in labels)

    flow, d = _chart(at, "kr_dataflow"), drawing.dataflow_drawing(graph)
    lay = flow["layout"]
    assert (lay["height"], tuple(lay["xaxis"]["range"]), tuple(lay["yaxis"]["range"])) == \
        (d.frame.height, d.frame.x_range, d.frame.y_range)
    assert (lay["margin"]["l"], lay["margin"]["r"], lay["margin"]["t"], lay["margin"]["b"]) == d.frame.margin
    traces = {t.get("name"): t for t in flow["data"]}
    for s in d.streams:
        t = traces[f"stream {s.stream + 1}"]
        np.testing.assert_allclose(_arr(t["x"]), s.x)
        np.testing.assert_allclose(_arr(t["y"]), s.y)
        assert t["marker"]["size"] == d.dot_px and t["marker"]["color"] == s.color
        assert t["marker"]["symbol"] == ["circle" if r else "circle-open" for r in s.runs.tolist()]
        assert tuple(t.get("text") or ()) == s.letters
    assert tuple(traces["names"]["text"]) == d.names if d.names else "names" not in traces

    adj, a = _chart(at, "kr_adjacency"), drawing.adjacency_drawing(graph)
    heat = adj["data"][0]
    assert [c for _, c in heat["colorscale"]] == list(drawing.VIRIDIS)
    assert (heat["zmin"], heat["zmax"]) == (a.zmin, a.zmax)


def test_a_big_graph_shows_the_same_depth_summary_as_its_png():
    from engine.kronecker import drawing
    from engine.kronecker.spec import KronSpec

    at = _app(power="6")
    flow = _chart(at, "kr_dataflow")
    d = drawing.summary_drawing(KronSpec.from_preset("example", 6).build())
    arcs = [t for t in flow["data"] if t.get("mode") == "lines"]
    bars = [t for t in flow["data"] if t.get("type") == "bar"]
    assert len(arcs) == len(d.arcs) and [t["line"]["width"] for t in arcs] == list(d.arcs_px)
    assert len(bars) == 1 and _arr(bars[0]["y"]).tolist() == d.counts.tolist()
    assert bars[0]["marker"]["color"] == d.bar_color


# ------------------------------------------------------------------------------------- metrics, icons
def test_metric_values_are_short_enough_never_to_be_cut_and_the_exact_numbers_are_in_a_caption():
    at = _app(power="8")
    values = {m.label: m.value for m in at.metric}
    assert values["Paths"] == "2.9e13" and values["Edges"] == "1.67 M" and values["Nodes"] == "6,561"
    assert all(len(str(v)) <= 6 for v in values.values()), values
    exact = next(c.value for c in at.caption if c.value.startswith("Exact:"))
    assert "29,247,820,616,474 input-to-output paths" in exact and "1,673,055 edges" in exact


def test_compact_numbers_fit_six_characters_and_round_half_up():
    from ui.kronecker.views import compact

    cases = {6561: "6,561", 99_999: "99,999", 100_000: "100 k", 999_999: "1 M", 1_673_055: "1.67 M",
             999_999_999: "1.0e9", 4_659_168_491_711_401: "4.7e15", 96 * 10**98: "9.6e99", 10**150: "1e150"}
    assert {v: compact(v) for v in cases} == cases
    assert all(len(compact(3**k)) <= 6 for k in range(200))


def test_buttons_carry_material_icons_not_emoji():
    at = _app()
    train = at.button(key="kt_train")
    assert train.label == "Train" and train.proto.icon == ":material/play_arrow:"
    downloads = at.get("download_button")
    assert downloads and all(b.proto.icon == ":material/download:" and b.proto.label.isascii() for b in downloads)


def _stored_run() -> str:
    """A small finished training (trained once per test session: the store key is the job id)."""
    import runs
    from engine.kronecker.spec import KronSpec, KronTrainSpec

    spec = KronTrainSpec(graph=KronSpec(base=[[1, 0], [1, 1]], names="pq", power=2), epochs=2, width=8,
                         batch_size=512, edge_weights="static", baselines=("base",), seed=3)
    job_id = runs.submit("kron_train", spec)
    assert runs.wait(job_id, timeout=240).state == "done"
    return job_id


def test_a_run_opened_later_in_the_session_replaces_the_view_and_the_sidebar_keeps_it():
    """The Runs page's "Open in Kronecker lab" is a link inside the same session: the lab must show that run even
    when it was open before, and coming back through the sidebar (no address) keeps what was on screen."""
    job_id = _stored_run()
    at = _app()
    at.number_input(key=POWER).set_value(3).run()
    at.switch_page("app.py").run()
    at.query_params.clear()
    at.query_params["run"] = job_id
    at.switch_page(PAGE).run()
    assert not at.exception and not at.warning
    assert at.session_state["kt_run"] == job_id
    assert at.number_input(key=POWER).value == 2 and at.query_params["names"] == "p,q"
    assert at.number_input(key="kt_seed").value == 3 and at.number_input(key="kt_width").value == 8
    assert "kt_train" not in [b.key for b in at.button]  # the stored result is shown

    at.switch_page("app.py").run()
    at.query_params.clear()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.number_input(key=POWER).value == 2 and at.number_input(key="kt_width").value == 8
    assert at.query_params["names"] == "p,q" and at.query_params["t_seed"] == "3"
    assert "kt_train" not in [b.key for b in at.button]


def test_a_finished_run_offers_its_charts_as_drawn():
    import runs
    from engine.kronecker import drawing, results

    job_id = _stored_run()
    at = _app(run=job_id)
    assert not at.exception
    labels = {b.proto.label for b in at.get("download_button")}
    assert {"loss.png", "test_accuracy.png", "edge_weights_kron_tied.png"} <= labels
    run = results.read(runs.result_dir(job_id))
    want = drawing.curves_drawing(run.points("test_curves"), "test_accuracy", "test accuracy (per epoch)", x="epoch")
    page = _chart(at, "kt_acc")
    assert [(t["name"], t["line"]["color"], t["line"]["width"]) for t in page["data"]] == \
        [(c.name, c.color, want.line_px) for c in want.curves] == \
        [("kron_tied", drawing.MODEL_COLORS["kron_tied"], 2.0), ("base", drawing.MODEL_COLORS["base"], 2.0)]
