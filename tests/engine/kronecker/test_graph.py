"""Kronecker layer graphs: the worked example exactly, products, powers, path counts, validation, CLI, spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from engine.kronecker.__main__ import main
from engine.kronecker.export import adjacency_csv, adjacency_npy, adjacency_png, dataflow_png
from engine.kronecker.graph import KronGraph
from engine.kronecker.spec import MAX_ENTRIES, PRESETS, KronSpec, parse_matrix, parse_names

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


@pytest.fixture(scope="module")
def example():
    return KronGraph(EXAMPLE, "abc")


# ---------------------------------------------------------------------------------------------- the worked example


def test_base_example_equations(example):
    assert example.labels == ("a", "b", "c")
    assert example.dataflow() == ["X1 = a(input)", "X2 = b(X1)", "X3 = c(X1 + X2)"]
    assert example.streams() == ["abc"]


def test_worked_example_matrix_and_labels(example):
    g = example.kron(example)
    expected = np.kron(np.array(EXAMPLE), np.array(EXAMPLE))
    assert sp.issparse(g.adjacency)
    assert g.adjacency.shape == (9, 9)
    np.testing.assert_array_equal(g.adjacency.toarray(), expected)
    assert list(g.labels) == "aa ab ac ba bb bc ca cb cc".split()
    assert g.layers[1] == ("a", "b")  # node ab runs a on stream 1 and b on stream 2


def test_worked_example_label_matrix(example):
    assert example.label_matrix() == [["a", "", ""], ["a", "b", ""], ["a", "b", "c"]]
    lm = example.power(2).label_matrix()
    # The label matrix of the square is the Kronecker "product" of the base label matrix, products concatenating.
    base = example.label_matrix()
    for i in range(9):
        for j in range(9):
            a, b = base[i // 3][j // 3], base[i % 3][j % 3]
            assert lm[i][j] == (a + b if a and b else "")
    assert lm[0] == ["aa"] + [""] * 8
    assert lm[2] == ["aa", "ab", "ac"] + [""] * 6
    assert lm[8] == "aa ab ac ba bb bc ca cb cc".split()


def test_worked_example_dataflow_streams_and_applications(example):
    g = example.power(2)
    eqs = g.dataflow()
    assert eqs[:3] == [
        "X1 = (a(input), a(input))",
        "X2 = (a(X1), b(X1))",
        "X3 = (a(X1 + X2), c(X1 + X2))",
    ]
    assert len(eqs) == 9
    assert eqs[3] == "X4 = (b(X1), a(X1))"  # ba reads aa only
    assert g.streams() == ["aaabbbccc", "abcabcabc"]
    st = g.stats()
    assert st.layer_applications == 18
    assert st.distinct_layers == 3
    assert (st.nodes, st.streams, st.edges) == (9, 2, 27)
    assert g.layer_names == ("a", "b", "c")


def test_dataflow_paging(example):
    g = example.power(3)
    assert g.dataflow(3, 6) == g.dataflow()[3:6]
    assert g.dataflow(25, 100) == [g.equation(25), g.equation(26)]


# ---------------------------------------------------------------------------------------------- products and powers


def test_kron_of_two_different_graphs(example):
    h = KronGraph([[1, 0], [1, 1]], ["x", "y"])
    g = example.kron(h)
    np.testing.assert_array_equal(g.adjacency.toarray(), np.kron(np.array(EXAMPLE), [[1, 0], [1, 1]]))
    assert list(g.labels) == ["ax", "ay", "bx", "by", "cx", "cy"]
    assert g.streams() == ["aabbcc", "xyxyxy"]
    assert g.dataflow()[:2] == ["X1 = (a(input), x(input))", "X2 = (a(X1), y(X1))"]
    st = g.stats()
    assert (st.nodes, st.streams, st.layer_applications, st.distinct_layers) == (6, 2, 12, 5)
    # The other order is a different graph: labels swap their halves.
    assert list(h.kron(example).labels) == ["xa", "xb", "xc", "ya", "yb", "yc"]


def test_weights_and_pass_through_nodes():
    # Node y has a zero diagonal: it passes its (weighted) input through without running a layer.
    h = KronGraph([[1, 0], [0.5, 0]], ["x", "y"])
    assert h.dataflow() == ["X1 = x(input)", "X2 = 0.5*X1"]
    assert h.streams() == ["x-"]
    assert h.stats().layer_applications == 1
    assert h.layer_names == ("x",)
    neg = KronGraph([[1, 0, 0], [1, 1, 0], [-1, 2, 1]], "abc")
    assert neg.equation(2) == "X3 = c(-X1 + 2*X2)"
    g = KronGraph(EXAMPLE, "abc").kron(h)
    assert g.streams() == ["aabbcc", "x-x-x-"]
    assert g.equation(1) == "X2 = (a(0.5*X1), 0.5*X1)"
    assert g.stats().layer_applications == 6 + 3


def test_power_sizes(example):
    g3 = example.power(3)
    assert g3.n_nodes == 27 and g3.n_streams == 3
    assert g3.adjacency.nnz == 6**3
    np.testing.assert_array_equal(
        g3.adjacency.toarray(), np.kron(np.kron(np.array(EXAMPLE), EXAMPLE), EXAMPLE)
    )
    assert g3.labels[5] == "abc" and g3.labels[-1] == "ccc"
    assert g3.stats().layer_applications == 27 * 3
    g8 = example.power(8)
    assert sp.issparse(g8.adjacency)
    assert g8.n_nodes == 6561 and g8.adjacency.shape == (6561, 6561)
    assert g8.adjacency.nnz == 6**8
    st = g8.stats()
    assert st.edges == 6**8 - 6561
    assert st.layer_applications == 6561 * 8
    assert st.longest_path == 8 * 2 + 1
    assert g8.labels[0] == "a" * 8 and g8.labels[-1] == "c" * 8
    assert len(g8.streams()) == 8 and g8.streams()[0] == "a" * 2187 + "b" * 2187 + "c" * 2187
    with pytest.raises(ValueError, match="power"):
        example.power(0)


# ---------------------------------------------------------------------------------------------- stats vs brute force


def _brute_paths_and_longest(dense: np.ndarray) -> tuple[int, int]:
    """Enumerate every input-to-output path by depth-first search (exponential: small graphs only)."""
    n = len(dense)
    preds = [[j for j in range(i) if dense[i, j] != 0] for i in range(n)]
    succs = [[i for i in range(n) if j in preds[i]] for j in range(n)]
    sources = [i for i in range(n) if not preds[i]]
    count, longest = 0, 0

    def walk(node, length):
        nonlocal count, longest
        if node == n - 1:
            count += 1
            longest = max(longest, length)
        for nxt in succs[node]:
            walk(nxt, length + 1)

    for s in sources:
        walk(s, 1)
    return count, longest


def _random_lower(rng, n):
    m = np.tril((rng.random((n, n)) < 0.6).astype(float), k=-1)
    m[np.arange(n), np.arange(n)] = (rng.random(n) < 0.8).astype(float)
    return m


@pytest.mark.parametrize("seed", range(6))
def test_path_counts_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    a = _random_lower(rng, int(rng.integers(2, 5)))
    b = _random_lower(rng, int(rng.integers(2, 4)))
    for dense, names in [(a, "abcd"[: len(a)]), (np.kron(a, b), None)]:
        if names is None:
            g = KronGraph(a, "abcd"[: len(a)]).kron(KronGraph(b, "xyz"[: len(b)]))
        else:
            g = KronGraph(dense, names)
        paths, longest = _brute_paths_and_longest(dense)
        st = g.stats()
        assert st.paths == paths
        assert isinstance(st.paths, int)
        assert st.longest_path == longest
        assert st.edges == int(np.count_nonzero(np.tril(dense, k=-1)))


def test_path_counts_known_values(example):
    assert example.stats().paths == 2  # a->b->c and a->c
    assert KronGraph([[1, 0, 0], [1, 1, 0], [0, 1, 1]], "abc").stats().paths == 1
    assert example.power(2).stats().paths == _brute_paths_and_longest(np.kron(EXAMPLE, EXAMPLE))[0]
    big = example.power(8).stats().paths
    assert isinstance(big, int) and big > 2**40  # past float-exact territory for many sums: kept exact


def test_layout_places_nodes_by_depth(example):
    g = example.power(2)
    lay = g.layout()
    assert lay.depth.tolist() == [0, 1, 2, 1, 2, 3, 2, 3, 4]
    # within a depth the y positions are distinct and centred
    for d in range(5):
        ys = lay.y[lay.depth == d]
        assert len(set(ys.tolist())) == len(ys) and abs(ys.mean()) < 1e-9
    counts, edges = g.depth_summary()
    assert counts.tolist() == [1, 2, 3, 2, 1]
    assert sum(edges.values()) == g.stats().edges
    assert all(a < b for a, b in edges)


def test_blocks_downsample_without_losing_entries(example):
    g = example.power(6)  # 729 nodes
    density, starts = g.blocks(100)
    f = starts[1] - starts[0]
    assert density.shape[0] <= 100 and f == 9  # 729 = 3**6: blocks of 9 follow the self-similar structure
    sizes = np.minimum(starts + f, g.n_nodes) - starts
    assert round(float((density * np.outer(sizes, sizes)).sum())) == g.adjacency.nnz
    seven = KronGraph(np.tril(np.ones((7, 7))), "abcdefg")  # 7 is prime: the last block is a partial one
    dens7, starts7 = seven.blocks(3)
    assert starts7.tolist() == [0, 3, 6]
    assert dens7[2, 2] == 1.0 and dens7[0, 2] == 0.0 and dens7[2, 0] == 1.0
    full, _ = example.power(2).blocks(256)
    np.testing.assert_array_equal(full, np.kron(EXAMPLE, EXAMPLE))


# ---------------------------------------------------------------------------------------------- validation


def test_not_square():
    with pytest.raises(ValueError, match=r"^adjacency: must be square"):
        KronGraph([[1, 0], [1, 1], [1, 1]], "abc")
    with pytest.raises(ValueError, match=r"^adjacency: must be a square matrix"):
        KronGraph(sp.csr_matrix(np.ones((2, 3))), "ab")


def test_above_diagonal_entry():
    with pytest.raises(ValueError, match=r"^adjacency: entry at row 1, column 3 = 1 is above the diagonal"):
        KronGraph([[1, 0, 1], [1, 1, 0], [1, 1, 1]], "abc")
    with pytest.raises(ValueError, match="above the diagonal"):
        KronGraph(sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 1.0]])), "ab")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "x"])
def test_non_finite_entry(bad):
    with pytest.raises(ValueError, match=r"^adjacency: entry at row 2, column 1 is .*finite"):
        KronGraph([[1, 0], [bad, 1]], "ab")


def test_wrong_number_of_names():
    with pytest.raises(ValueError, match=r"^names: got 2 names for 3 nodes"):
        KronGraph(EXAMPLE, "ab")
    with pytest.raises(ValueError, match=r"^names: node X2.s layer name"):
        KronGraph(EXAMPLE, ["a", "b c", "d"])


def test_empty_matrix():
    with pytest.raises(ValueError, match="at least 1 node"):
        KronGraph([], "")


# ---------------------------------------------------------------------------------------------- JSON, spec, presets


def test_json_round_trip(example):
    h = KronGraph([[1, 0], [0.5, 0]], ["x", "y"])
    for g in (example, example.power(3), example.kron(h)):
        back = KronGraph.from_json(g.to_json())
        assert back == g
        assert back.labels == g.labels and back.streams() == g.streams() and back.stats() == g.stats()
        assert back.dataflow() == g.dataflow()
    with pytest.raises(ValueError, match="^format"):
        KronGraph.from_dict({"nodes": 3})


def test_spec_round_trip_and_build():
    spec = KronSpec(base=EXAMPLE, names="abc", power=2)
    assert KronSpec.from_json(spec.to_json()) == spec
    assert spec.content_hash() == KronSpec.from_dict(json.loads(spec.to_json())).content_hash()
    assert spec.build() == KronGraph(EXAMPLE, "abc").power(2)
    two = KronSpec(base=EXAMPLE, names="abc", power=1, second=[[1, 0], [1, 1]], second_names="xy")
    assert KronSpec.from_json(two.to_json()) == two
    assert two.build().labels == ("ax", "ay", "bx", "by", "cx", "cy")
    assert two.describe() == "abc ⊗ xy"


def test_spec_validation_messages():
    with pytest.raises(ValueError, match=r"^base: entry at row 1, column 2"):
        KronSpec(base=[[1, 1], [1, 1]], names="ab")
    with pytest.raises(ValueError, match=r"^names: got 2 names for 3 nodes"):
        KronSpec(base=EXAMPLE, names="ab")
    with pytest.raises(ValueError, match=r"^power: must be an integer in 1\.\.12"):
        KronSpec(power=0)
    with pytest.raises(ValueError, match=r"^power: 9 grows this base to 19,683 nodes"):
        KronSpec(power=9)
    with pytest.raises(ValueError, match=r"^second_names: got 1 names for 2 nodes"):
        KronSpec(second=[[1, 0], [1, 1]], second_names="x")
    assert KronSpec(power=8).max_power() == 8
    assert 6**8 <= MAX_ENTRIES


def test_presets_are_valid():
    assert {"example", "chain", "two-node", "dense triangle"} <= set(PRESETS)
    for name, preset in PRESETS.items():
        g = preset.graph()
        assert g.n_nodes == len(preset.names)
        assert KronSpec.from_preset(name).build().n_nodes == g.n_nodes**2
    assert PRESETS["chain"].graph().dataflow() == ["X1 = a(input)", "X2 = b(X1)", "X3 = c(X2)"]


def test_parsers():
    assert parse_names("abc") == ("a", "b", "c")
    assert parse_names("conv, mlp,attn") == ("conv", "mlp", "attn")
    assert parse_matrix("[[1,0],[1,1]]") == [[1, 0], [1, 1]]
    assert parse_matrix("1 0; 1 1") == [[1.0, 0.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match="^base"):
        parse_matrix("[[1,0],")


def test_pictures_are_png(example):
    for data in (dataflow_png(example.power(2)), adjacency_png(example.power(2)), dataflow_png(example.power(6))):
        assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_adjacency_exports(example):
    import io

    g = example.power(2)
    name, data = adjacency_npy(g)
    assert name == "adjacency.npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(data)), np.kron(EXAMPLE, EXAMPLE))
    name, data = adjacency_csv(g)
    lines = data.decode().splitlines()
    assert name == "adjacency.csv" and lines[0] == ",aa,ab,ac,ba,bb,bc,ca,cb,cc"
    assert lines[2] == "ab,1,1,0,0,0,0,0,0,0"
    # above the dense limit: sparse triples that rebuild the same matrix
    name, data = adjacency_npy(g, dense_limit=4)
    trip = np.load(io.BytesIO(data))
    assert name == "adjacency_coo.npy" and trip.shape == (36, 3)
    rebuilt = sp.coo_matrix((trip[:, 2], (trip[:, 0].astype(int), trip[:, 1].astype(int))), shape=(9, 9))
    np.testing.assert_array_equal(rebuilt.toarray(), np.kron(EXAMPLE, EXAMPLE))
    name, data = adjacency_csv(g, dense_limit=4)
    lines = data.decode().splitlines()
    assert name == "adjacency_coo.csv" and lines[0] == "row,col,weight,row_label,col_label"
    assert lines[1:3] == ["0,0,1,aa,aa", "1,0,1,ab,aa"] and len(lines) == 37


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_show(capsys):
    assert main(["show", "--base", "[[1,0,0],[1,1,0],[1,1,1]]", "--names", "abc", "--power", "2"]) == 0
    out = capsys.readouterr().out
    assert "aa ab ac ba bb bc ca cb cc" in out
    assert "X2 = (a(X1), b(X1))" in out
    assert "stream 1: aaabbbccc" in out and "stream 2: abcabcabc" in out
    assert "layer applications: 18" in out


def test_cli_bad_matrix_exits_with_message(capsys):
    assert main(["show", "--base", "[[1,1],[1,1]]", "--names", "ab"]) == 2
    assert "base: entry at row 1, column 2 = 1 is above the diagonal" in capsys.readouterr().err


def test_cli_as_module():
    proc = subprocess.run(
        [sys.executable, "-m", "engine.kronecker", "show", "--preset", "two-node", "--power", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "nodes: 8" in proc.stdout and "stream 3: abababab" in proc.stdout


def test_cli_train_dispatches_to_kronecker_net(capsys):
    """``python -m engine.kronecker train ...`` trains the graph (same graph flags as ``show``)."""
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--task" in out and "--base" in out and "--power" in out
    assert main(["train", "--base", "[[1,1],[0,1]]", "--names", "ab"]) == 2
    assert "base: entry at row 1, column 2 = 1 is above the diagonal" in capsys.readouterr().err
