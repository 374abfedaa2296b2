"""KroneckerNet: parameter counts, every option's forward/backward, batched == node-by-node, the dynamic gate,
and the kron_train task function / CLI on tiny settings."""

from __future__ import annotations

import csv
import itertools
import json
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.errors import Cancelled
from engine.kronecker.__main__ import main as kronecker_main
from engine.kronecker.graph import KronGraph
from engine.kronecker.net import GraphPlan, KroneckerNet, block_parameters, build_models
from engine.kronecker.results import run_to_dir
from engine.kronecker.spec import COMBINES, EDGE_WEIGHTS, KronSpec, KronTrainSpec
from engine.kronecker.tasks import TASKS, make_sort_data
from engine.kronecker.train import train_compare

EXAMPLE = [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


@pytest.fixture(autouse=True)
def _one_thread():
    """These nets are tiny: a second thread only spin-waits on a shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
OPTIONS = list(itertools.product(("mlp", "transformer"), (True, False), EDGE_WEIGHTS, COMBINES))


def example2() -> KronGraph:
    return KronGraph(EXAMPLE, "abc").power(2)


def net(graph, block="mlp", tied=True, edge_weights="none", combine="mean", width=8, per_token=False,
        seed=0, randomise_edges=True) -> KroneckerNet:
    """A tiny net on 8 tokens x 8 features; edge parameters randomised so the checks do not pass by symmetry."""
    torch.manual_seed(seed)
    m = KroneckerNet(graph, seq_len=8, features=8, n_classes=5, per_token=per_token, block=block, tied=tied,
                     edge_weights=edge_weights, combine=combine, width=width, heads=2)
    if randomise_edges:
        with torch.no_grad():
            if m.gate_query is not None:
                m.gate_query.normal_()
                m.gate_bias.normal_()
            if m.edge_weight is not None:
                m.edge_weight.uniform_(0.3, 1.5)
    return m


# ---------------------------------------------------------------------------------------------------------------
# Parameter counts
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", ["mlp", "transformer"])
def test_tied_parameters_are_the_base_layers(block):
    g = example2()
    m = net(g, block=block, tied=True)
    parts = m.parameter_breakdown()
    assert len(m.layer_names) == 3 and m.layer_names == ["a", "b", "c"]
    assert parts["layers"] == 3 * block_parameters(block, 8, 2)
    assert parts["total"] == sum(p.numel() for p in m.parameters())
    assert parts["total"] == parts["layers"] + parts["stem"] + parts["head"] + parts["edges"]
    # The base graph alone has exactly the same parameters (same layers, stem and head), with fewer applications.
    base = net(KronGraph(EXAMPLE, "abc"), block=block, tied=True)
    assert base.parameter_breakdown() == parts
    assert (base.applications, m.applications) == (3, 18)


@pytest.mark.parametrize("block", ["mlp", "transformer"])
def test_untied_has_one_layer_per_node_and_stream(block):
    g = example2()
    m = net(g, block=block, tied=False)
    assert g.stats().layer_applications == 18
    assert len(m.layer_names) == 18
    assert m.parameter_breakdown()["layers"] == 18 * block_parameters(block, 8, 2)
    used = m.pair_layer[m.pair_layer >= 0]
    assert sorted(used.tolist()) == list(range(18))  # every (node, stream) its own layer


def test_edge_parameters_are_counted():
    g = example2()  # 9 nodes, 27 edges, 2 streams
    assert net(g, edge_weights="none").parameter_breakdown()["edges"] == 0
    assert net(g, edge_weights="static").parameter_breakdown()["edges"] == 27
    assert net(g, edge_weights="dynamic").parameter_breakdown()["edges"] == 9 * 2 * 8 + 27


def test_pass_through_streams_run_no_layer():
    # Middle base node has a zero diagonal: in kron(B, B) a stream whose factor is that node passes through.
    b = KronGraph([[1, 0, 0], [1, 0, 0], [1, 1, 1]], "abc")
    g = b.power(2)
    m = net(g, tied=False)
    assert m.applications == int(g.runs.sum()) == 4 * 2 + 4 * 1  # 4 nodes run both streams, 4 run one
    assert len(m.layer_names) == m.applications
    assert net(g, tied=True).layer_names == ["a", "c"]


# ---------------------------------------------------------------------------------------------------------------
# Forward, backward and the batched path
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block,tied,edge_weights,combine", OPTIONS)
def test_forward_backward_every_option(block, tied, edge_weights, combine):
    m = net(example2(), block, tied, edge_weights, combine)
    x = torch.rand(3, 8, 8)
    y = m(x)
    assert y.shape == (3, 5) and torch.isfinite(y).all()
    F.cross_entropy(y, torch.tensor([0, 1, 2])).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name != "head.fc.bias" and not name.startswith("gate_bias"):
            assert p.grad.abs().sum() > 0, f"{name} got no gradient"


@pytest.mark.parametrize("block,tied,edge_weights,combine", OPTIONS)
def test_batched_equals_node_by_node(block, tied, edge_weights, combine):
    m = net(example2(), block, tied, edge_weights, combine).double()
    x = torch.rand(4, 8, 8, dtype=torch.float64)
    y, w = m(x, return_edge_weights=True)
    y_ref, w_ref = m.forward_reference(x, return_edge_weights=True)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(w, w_ref.to(w.dtype), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("graph", [
    KronGraph([[1, 0, 0], [1, 0, 0], [1, 1, 1]], "abc").power(2),          # pass-through streams
    KronGraph(EXAMPLE, "abc").kron(KronGraph([[1, 0], [0.5, 1]], "xy")),  # two different graphs, weighted edge
    KronGraph([[1, 0], [1, 1]], "ab").power(3),                             # three streams
], ids=["pass-through", "multi-fractal", "three-streams"])
@pytest.mark.parametrize("tied", [True, False])
def test_batched_equals_node_by_node_other_graphs(graph, tied):
    for block, ew in (("mlp", "static"), ("transformer", "dynamic")):
        m = net(graph, block, tied, ew, "concat", per_token=True).double()
        x = torch.rand(2, 8, 8, dtype=torch.float64)
        torch.testing.assert_close(m(x), m.forward_reference(x), rtol=1e-10, atol=1e-12)


def test_dataflow_matches_hand_written_equations():
    """kron([[1,0],[1,1]]) runs X0=(a(e),a(e)), X1=(a(X0), b(X0)), X2=(b(X0), a(X0)), X3=(b(S), b(S)) with
    S = X0+X1+X2 per stream, and the output is the mean of X3's streams."""
    g = KronGraph([[1, 0], [1, 1]], "ab").power(2)
    assert list(g.labels) == ["aa", "ab", "ba", "bb"]
    m = net(g, "mlp", True, "none", "mean").double()
    x = torch.rand(3, 8, 8, dtype=torch.float64)
    a = lambda h: m.layers.apply(h[None], m.layer_names.index("a"))[0]  # noqa: E731
    b = lambda h: m.layers.apply(h[None], m.layer_names.index("b"))[0]  # noqa: E731
    e = m.stem(x)
    x0 = (a(e), a(e))
    x1 = (a(x0[0]), b(x0[1]))
    x2 = (b(x0[0]), a(x0[1]))
    s = [x0[k] + x1[k] + x2[k] for k in range(2)]
    out = m.head((b(s[0]) + b(s[1])) / 2)
    torch.testing.assert_close(m(x), out)


def test_zero_diagonal_passes_input_through():
    g = KronGraph([[1, 0], [1, 0]], "ab")  # X1 = a(e); X2 = X1 (no layer)
    m = net(g).double()
    x = torch.rand(2, 8, 8, dtype=torch.float64)
    out = m.head(m.layers.apply(m.stem(x)[None], 0)[0])
    torch.testing.assert_close(m(x), out)


# ---------------------------------------------------------------------------------------------------------------
# The dynamic gate
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", ["mlp", "transformer"])
def test_dynamic_weights_softmax_over_each_nodes_incoming_edges(block):
    g = example2()
    m = net(g, block=block, edge_weights="dynamic")
    x = torch.rand(5, 8, 8)
    _, w = m(x, return_edge_weights=True)
    plan = m.plan
    # Per example for vector states, per example and token for token states.
    assert w.shape == ((plan.edges, 5) if block == "mlp" else (plan.edges, 5, 8))
    assert (w > 0).all()
    sums = torch.zeros((plan.n,) + w.shape[1:]).index_add(0, torch.as_tensor(plan.edge_dst), w)
    has_inputs = torch.as_tensor(~plan.sources)
    torch.testing.assert_close(sums[has_inputs], torch.ones_like(sums[has_inputs]))
    assert (sums[~has_inputs] == 0).all()
    assert w.std(dim=1).max() > 0  # really computed per example, not one weight per edge


def test_dynamic_gate_starts_at_the_adjacency_proportions():
    g = KronGraph([[1, 0, 0], [1, 1, 0], [1, 3, 1]], "abc")  # node 2 reads node 0 (x1) and node 1 (x3)
    m = net(g, edge_weights="dynamic", randomise_edges=False)
    _, w = m(torch.rand(4, 8, 8), return_edge_weights=True)
    # Edges in (row, column) order: (1,0), (2,0), (2,1).
    torch.testing.assert_close(w, torch.tensor([[1.0], [0.25], [0.75]]).expand(3, 4))


# ---------------------------------------------------------------------------------------------------------------
# Spec, baselines, training, files, CLI
# ---------------------------------------------------------------------------------------------------------------


def test_spec_round_trip_and_validation():
    spec = KronTrainSpec(graph=KronSpec(base=((1, 0), (1, 1)), names=("a", "b"), power=3), edge_weights="dynamic",
                         baselines=("sequential",))
    again = KronTrainSpec.from_json(spec.to_json())
    assert again == spec and again.content_hash() == spec.content_hash()
    assert isinstance(again.graph, KronSpec) and again.graph.power == 3
    assert spec.model_names() == ["kron_tied", "sequential"]
    assert KronTrainSpec(tied=False).model_names() == ["kron_untied", "base", "sequential"]
    assert KronTrainSpec().model_names() == ["kron_tied", "base", "sequential", "kron_untied"]
    for kwargs, field in [({"width": 2}, "width"), ({"task": "cifar"}, "task"), ({"block": "conv"}, "block"),
                          ({"edge_weights": "learned"}, "edge_weights"), ({"combine": "sum"}, "combine"),
                          ({"epochs": 0}, "epochs"), ({"lr": 0.0}, "lr"), ({"batch_size": 0}, "batch_size"),
                          ({"baselines": ("base", "base")}, "baselines"), ({"baselines": ("deep",)}, "baselines"),
                          ({"block": "transformer", "width": 10, "heads": 4}, "heads"),
                          ({"graph": KronSpec(power=7)}, "graph")]:
        with pytest.raises(ValueError, match=f"^{field}:"):
            KronTrainSpec(**kwargs)


def test_sequential_baseline_matches_the_tied_parameter_count():
    for block in ("mlp", "transformer"):
        spec = KronTrainSpec(block=block, task="sort" if block == "transformer" else "digits", width=16)
        models = build_models(spec, "cpu")
        tied = models["kron_tied"].parameter_breakdown()["total"]
        seq = models["sequential"]
        assert seq.plan.streams == 1 and len(seq.layer_names) == 9 == seq.applications  # as deep as one stream
        # The matched width is the one whose count is closest: the next width up or down is no closer.
        step = 2 if block == "transformer" else 1
        others = [KroneckerNet(GraphPlan.chain(9), **{**seq.config, "width": seq.width + d})
                  .parameter_breakdown()["total"] for d in (-step, step)]
        err = abs(seq.parameter_breakdown()["total"] - tied)
        assert all(err <= abs(o - tied) for o in others)
        assert models["base"].parameter_breakdown()["total"] == tied


def test_sort_task_is_deterministic_and_sorted():
    x1, y1 = make_sort_data(50, seed=3)
    x2, y2 = make_sort_data(50, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    tokens = x1.argmax(-1)
    assert torch.equal(torch.sort(tokens, 1).values, y1)
    assert TASKS["sort"].per_token and not TASKS["digits"].per_token


def _tiny(**kw) -> KronTrainSpec:
    base = dict(graph=KronSpec(base=((1, 0), (1, 1)), names=("a", "b"), power=2), width=8, epochs=1,
                batch_size=512, lr=1e-2)
    base.update(kw)
    return KronTrainSpec(**base)


def test_run_to_dir_writes_the_results(tmp_path):
    spec = _tiny(edge_weights="static")
    events = []
    run_to_dir(spec, tmp_path, progress=lambda f, info=None: events.append((f, info)))
    names = {p.name for p in tmp_path.iterdir()}
    assert {"results.csv", "curves.csv", "summary.json", "spec.json"} <= names
    assert {f"checkpoint_{m}.safetensors" for m in spec.model_names()} <= names
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [r["model"] for r in rows] == ["kron_tied", "base", "sequential", "kron_untied"]
    for r in rows:
        assert 0.0 <= float(r["test_accuracy"]) <= 1.0 and int(r["parameters"]) > 0 and float(r["train_time_s"]) > 0
    apps = {r["model"]: int(r["layer_applications"]) for r in rows}
    assert apps == {"kron_tied": 8, "base": 2, "sequential": 4, "kron_untied": 8}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["edge_weights"]) == {"kron_tied", "base", "kron_untied"}
    ew = summary["edge_weights"]["kron_tied"]
    assert len(ew["rows"]) == len(ew["cols"]) == len(ew["weights"]) == 5  # kron([[1,0],[1,1]]) has 5 edges
    assert KronTrainSpec.from_json((tmp_path / "spec.json").read_text()) == spec
    # Progress: fractions rise to 1; info dicts carry what the live curves need.
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    steps = [i for _, i in events if "loss" in i]
    assert steps and all({"model", "step", "loss", "accuracy"} <= set(i) for i in steps)
    assert {i["model"] for _, i in events} == set(spec.model_names())
    # A checkpoint loads back into the same architecture and reproduces the trained model.
    from safetensors.torch import load_file

    m = build_models(spec, "cpu")["kron_tied"]
    m.load_state_dict(load_file(str(tmp_path / "checkpoint_kron_tied.safetensors")))
    assert m.edge_weight.detach().tolist() == pytest.approx(ew["weights"])


def test_train_compare_sort_transformer_dynamic():
    spec = _tiny(task="sort", block="transformer", edge_weights="dynamic", combine="concat",
                 baselines=("base",), batch_size=1000)
    result = train_compare(spec, device="cpu")
    assert [r["model"] for r in result.table] == ["kron_tied", "base"]
    ew = result.edge_weights["kron_tied"]
    assert ew["kind"] == "dynamic" and len(ew["std"]) == len(ew["weights"])
    # Mean gate weights still sum to 1 over each node's incoming edges.
    sums = np.zeros(ew["nodes"])
    np.add.at(sums, ew["rows"], ew["weights"])
    assert np.allclose(sums[np.unique(ew["rows"])], 1.0)
    assert len(result.curves["kron_tied"]) == 4  # 4000 training sequences / batch 1000, one epoch


def test_cancel_raises(tmp_path):
    ev = threading.Event()
    ev.set()
    with pytest.raises(Cancelled):
        run_to_dir(_tiny(), tmp_path, cancel=ev)
    assert not (tmp_path / "results.csv").exists()


def test_cli_train_via_engine_kronecker(tmp_path, capsys):
    rc = kronecker_main(["train", "--base", "[[1,0],[1,1]]", "--names", "ab", "--power", "2", "--task", "digits",
                         "--epochs", "1", "--width", "8", "--batch-size", "512", "--baselines", "base",
                         "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| kron_tied |" in out and "| base |" in out
    assert (tmp_path / "results.csv").exists()
    assert kronecker_main(["train", "--width", "2"]) == 2
    assert "width:" in capsys.readouterr().err

