"""The layer graph: a lower-triangular matrix whose Kronecker powers grow a self-similar network.

Row ``i`` is node ``i``: a non-zero diagonal runs its layer, entries below it weight the inputs it sums. Node
``(i, j)`` of ``kron(A, B)`` carries one state per stream and is named by concatenation (``"ab"``). Powers are
``scipy.sparse`` all the way, because non-zeros grow as ``nnz ** k`` while the dense size grows as ``n ** 2k``;
no torch here, so drawing a graph never pays for importing it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from engine.specs import short_repr

#: Layer names appear inside equations such as ``a(X1 + X2)``, so they are kept to letters, digits and ``_``.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")
#: What :meth:`KronGraph.streams` shows for a stream step that passes its input through (zero diagonal).
PASS_MARK = "-"
#: The JSON format tag written by :meth:`KronGraph.to_dict` (so a loader can tell our files from others).
JSON_FORMAT = "fractal-lab.kron-graph"
#: :meth:`KronGraph.label_matrix` is a dense matrix of strings: refuse to build one bigger than this by default.
LABEL_MATRIX_LIMIT = 1024


# ----------------------------------------------------------------------------------------------------------------
# the matrix rules: the one validator behind KronGraph, KronSpec, the CLI and the page's editor
# ----------------------------------------------------------------------------------------------------------------


def format_number(value: float) -> str:
    """A number as people write it in a matrix: ``1`` not ``1.0``, ``0.5`` stays ``0.5``."""
    return f"{value:g}"


_FINITE = "all entries must be finite numbers"
_ABOVE = (
    "is above the diagonal; a node may only read earlier nodes, so only entries on or below the diagonal "
    "(column <= row) may be non-zero"
)


def _where(i: int, j: int) -> str:
    """An entry's position as people count it: rows and columns from 1, like the node names X1, X2, ..."""
    return f"entry at row {int(i) + 1}, column {int(j) + 1}"


def square_rows(field: str, adjacency: Any, *, allow_empty: bool = False) -> list[list[float | None]]:
    """A dense square matrix as rows of floats, or ``ValueError`` naming ``field`` and the first bad row or entry.

    ``allow_empty`` keeps empty cells as ``None`` (an editor can show them; :func:`to_sparse` then refuses them).
    """
    rows = adjacency.tolist() if isinstance(adjacency, np.ndarray) else adjacency
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise ValueError(f"{field}: must be a square matrix (a list of rows), got {type(adjacency).__name__}")
    if len(rows) == 0:
        raise ValueError(f"{field}: must have at least 1 node (got an empty matrix)")
    n = len(rows)
    for i, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
            raise ValueError(f"{field}: must be a square matrix; row {i} is not a list of numbers")
        if len(row) != n:
            raise ValueError(
                f"{field}: must be square ({n} rows need {n} columns each), but row {i} has {len(row)} columns"
            )
    out: list[list[float | None]] = []
    for i, row in enumerate(rows):
        out.append([])
        for j, value in enumerate(row):
            if value is None and allow_empty:
                out[-1].append(None)
                continue
            if value is None or isinstance(value, (str, bytes, bool)):
                shown = "empty" if value is None else repr(value)
                raise ValueError(f"{field}: {_where(i, j)} is {shown}; {_FINITE}")
            try:
                out[-1].append(float(value))
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"{field}: {_where(i, j)} is {short_repr(value)}; {_FINITE}") from None
    return out


def to_sparse(field: str, adjacency: Any) -> sp.csr_matrix:
    """Validate ``adjacency`` (dense array-like or scipy.sparse) and return it as a float64 CSR matrix.

    Raises ``ValueError`` starting with ``field`` for: not two-dimensional, not square, empty, non-numeric or
    non-finite entries, and any non-zero entry above the diagonal (a node may only read earlier nodes).
    """
    if sp.issparse(adjacency):
        mat = sp.csr_matrix(adjacency, dtype=np.float64)
        if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
            raise ValueError(f"{field}: must be a square matrix, got shape {mat.shape[0]}x{mat.shape[1]}")
        if mat.shape[0] == 0:
            raise ValueError(f"{field}: must have at least 1 node (got an empty matrix)")
        coo = mat.tocoo()
        bad = ~np.isfinite(coo.data)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{field}: {_where(coo.row[k], coo.col[k])} is {coo.data[k]}; {_FINITE}")
        upper = (coo.col > coo.row) & (coo.data != 0)
        if upper.any():
            k = int(np.flatnonzero(upper)[0])
            where = _where(coo.row[k], coo.col[k])
            raise ValueError(f"{field}: {where} = {format_number(coo.data[k])} {_ABOVE}")
    else:
        dense = np.array(square_rows(field, adjacency), dtype=np.float64)
        bad = ~np.isfinite(dense)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"{field}: {_where(i, j)} is {dense[i, j]}; {_FINITE}")
        upper = np.triu(dense, k=1) != 0
        if upper.any():
            i, j = (int(v) for v in np.argwhere(upper)[0])
            raise ValueError(f"{field}: {_where(i, j)} = {format_number(dense[i, j])} {_ABOVE}")
        mat = sp.csr_matrix(dense)
    mat.eliminate_zeros()
    mat.sort_indices()
    return mat


def check_name(field: str, name: Any, node: int | None = None) -> str:
    where = f"node X{node + 1}'s " if node is not None else ""
    if name is None or (isinstance(name, str) and not name.strip()):
        raise ValueError(f"{field}: {where}layer name is empty; use 1 or more letters, digits or '_' (e.g. 'a')")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(
            f"{field}: {where}layer name {short_repr(name)} is not allowed; use 1 or more letters, digits or '_' "
            "(e.g. 'a', 'conv1')"
        )
    return name


# ----------------------------------------------------------------------------------------------------------------
# the graph
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphStats:
    """Size and shape of a graph, the numbers the lab reports (all exact integers).

    ``longest_path`` counts the *nodes* on the longest input-to-output path: the number of sequential steps the
    network must take, which is what a Kronecker power shortens compared with a plain stack of its applications.
    ``paths`` counts the distinct input-to-output paths (it grows combinatorially, hence a Python int).
    """

    nodes: int
    edges: int
    streams: int
    layer_applications: int
    distinct_layers: int
    longest_path: int
    paths: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Layout:
    """A layered drawing position for every node: ``x`` is its depth, ``y`` its place within that depth."""

    depth: np.ndarray
    x: np.ndarray
    y: np.ndarray


class KronGraph:
    """A layer graph: a lower-triangular sparse adjacency matrix plus the layer each node runs on each stream.

    ``KronGraph(adjacency, names)`` builds a one-stream graph from a square matrix (list of rows, numpy array or
    scipy.sparse) and one layer name per node (``"abc"`` works: a string is a sequence of names). A multi-stream
    graph (what :meth:`kron` returns) can be rebuilt by passing one tuple of names per node, and optionally
    ``runs``: a (nodes x streams) boolean array saying which streams run their layer. By default every stream of a
    node runs when its diagonal entry is non-zero; the diagonal must be non-zero exactly where all streams run,
    which is what the Kronecker product of the diagonals gives.
    """

    def __init__(self, adjacency: Any, names: Sequence[str] | Sequence[Sequence[str]], runs: Any = None):
        adj = to_sparse("adjacency", adjacency)
        n = adj.shape[0]
        if isinstance(names, str):
            names = tuple(names)
        try:
            names = list(names)
        except TypeError:
            raise ValueError(f"names: must be a sequence of layer names, got {type(names).__name__}") from None
        if len(names) != n:
            raise ValueError(f"names: got {len(names)} names for {n} nodes; give exactly one name per node")
        per_node: list[tuple[str, ...]] = []
        for i, name in enumerate(names):
            if isinstance(name, str) or name is None:
                per_node.append((check_name("names", name, i),))
            elif isinstance(name, Sequence) and len(name) > 0:
                per_node.append(tuple(check_name("names", part, i) for part in name))
            else:
                raise ValueError(f"names: node X{i + 1} needs a layer name (or one per stream), got {short_repr(name)}")
        streams = {len(t) for t in per_node}
        if len(streams) != 1:
            raise ValueError(f"names: every node must name the same number of streams, got {sorted(streams)}")
        s = streams.pop()
        vocab: dict[str, int] = {}
        codes = np.empty((n, s), dtype=np.int32)
        for i, t in enumerate(per_node):
            for k, name in enumerate(t):
                codes[i, k] = vocab.setdefault(name, len(vocab))
        diag_runs = adj.diagonal() != 0
        if runs is None:
            run_arr = np.repeat(diag_runs[:, None], s, axis=1)
        else:
            run_arr = np.asarray(runs, dtype=bool)
            if run_arr.ndim == 1 and s == 1:
                run_arr = run_arr[:, None]
            if run_arr.shape != (n, s):
                raise ValueError(f"runs: must have shape ({n}, {s}) (nodes x streams), got {run_arr.shape}")
            mismatch = run_arr.all(axis=1) != diag_runs
            if mismatch.any():
                i = int(np.flatnonzero(mismatch)[0])
                raise ValueError(
                    f"runs: node {i} has diagonal {format_number(adj[i, i])} but runs={run_arr[i].tolist()}; the "
                    "diagonal must be non-zero exactly when every stream of the node runs its layer"
                )
        self._init(adj, tuple(vocab), codes, run_arr, None)

    # A private constructor for results of kron(): already valid, so skip the per-entry checks.
    @classmethod
    def _make(cls, adj, vocab, codes, runs, labels) -> "KronGraph":
        g = cls.__new__(cls)
        g._init(adj, vocab, codes, runs, labels)
        return g

    def _init(self, adj, vocab, codes, runs, labels) -> None:
        # Canonical vocabulary order: first appearance scanning nodes, then streams. It makes the order (and so
        # layer indices in a tied network) a function of the graph alone, identical after a JSON round trip.
        flat = codes.ravel()
        _, first = np.unique(flat, return_index=True)
        order = np.unique(flat)[np.argsort(first)]
        remap = np.full(len(vocab), -1, dtype=np.int32)
        remap[order] = np.arange(len(order), dtype=np.int32)
        self._vocab = tuple(vocab[int(c)] for c in order)
        self._codes = remap[codes]
        self._codes.setflags(write=False)
        self._runs = np.ascontiguousarray(runs, dtype=bool)
        self._runs.setflags(write=False)
        self._adj = adj
        self._labels = tuple(labels) if labels is not None else None
        self._strict: sp.csr_matrix | None = None
        self._dp: tuple[np.ndarray, int] | None = None

    # ------------------------------------------------------------------ basic views

    @property
    def adjacency(self) -> sp.csr_matrix:
        """The adjacency as a scipy.sparse CSR matrix (float64). Use ``.toarray()`` only for small graphs."""
        return self._adj

    @property
    def n_nodes(self) -> int:
        return self._adj.shape[0]

    def __len__(self) -> int:
        return self.n_nodes

    @property
    def n_edges(self) -> int:
        """Non-zero entries below the diagonal: one per input a node reads."""
        return int(self._strict_lower().nnz)

    @property
    def n_streams(self) -> int:
        return self._codes.shape[1]

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per node: its per-stream layer names concatenated (``"ab"``)."""
        if self._labels is None:
            v = self._vocab
            self._labels = tuple("".join(v[c] for c in row) for row in self._codes.tolist())
        return self._labels

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Every layer name a node carries (applied or not), in order of first appearance."""
        return self._vocab

    @property
    def layer_codes(self) -> np.ndarray:
        """(nodes x streams) int array: index into :attr:`vocabulary` of the layer each stream of each node has."""
        return self._codes

    @property
    def runs(self) -> np.ndarray:
        """(nodes x streams) bool array: whether that stream of that node applies its layer (else passes through)."""
        return self._runs

    @property
    def layers(self) -> tuple[tuple[str, ...], ...]:
        """The layer names of each node, one per stream: ``layers[1] == ("a", "b")`` for node ``ab``."""
        v = self._vocab
        return tuple(tuple(v[c] for c in row) for row in self._codes.tolist())

    @property
    def layer_names(self) -> tuple[str, ...]:
        """The distinct layers actually applied somewhere, in order of first application (a tied net's layers)."""
        applied = self._codes[self._runs]
        if applied.size == 0:
            return ()
        _, first = np.unique(applied, return_index=True)
        uniq = np.unique(applied)
        return tuple(self._vocab[int(c)] for c in uniq[np.argsort(first)])

    def _strict_lower(self) -> sp.csr_matrix:
        if self._strict is None:
            s = sp.tril(self._adj, k=-1, format="csr")
            s.eliminate_zeros()
            s.sort_indices()
            self._strict = s
        return self._strict

    def inputs(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The nodes node ``i`` reads (ascending) and their weights; empty means it reads the network input."""
        s = self._strict_lower()
        a, b = s.indptr[i], s.indptr[i + 1]
        return s.indices[a:b].copy(), s.data[a:b].copy()

    def edge_list(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every edge (non-zero entry below the diagonal) as ``(rows, cols, weights)``: node ``rows[e]`` reads
        node ``cols[e]`` with weight ``weights[e]``; sorted by row, then column."""
        coo = self._strict_lower().tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.copy()

    @property
    def input_nodes(self) -> np.ndarray:
        """Indices of the nodes with no inputs (they read the network input)."""
        return np.flatnonzero(np.diff(self._strict_lower().indptr) == 0)

    # ------------------------------------------------------------------ growing

    def kron(self, other: "KronGraph") -> "KronGraph":
        """The Kronecker product ``self (x) other``: node ``(i, j)`` has index ``i * len(other) + j``.

        Its streams are ``self``'s streams followed by ``other``'s; its label concatenates both labels. With two
        different graphs this is the "multi-fractal" case; layers with the same name in both are the same layer.
        """
        if not isinstance(other, KronGraph):
            raise TypeError(f"kron: expected a KronGraph, got {type(other).__name__}")
        adj = sp.kron(self._adj, other._adj, format="csr")
        adj.eliminate_zeros()
        adj.sort_indices()
        vocab = list(self._vocab)
        index = {name: k for k, name in enumerate(vocab)}
        mapped = np.empty(len(other._vocab), dtype=np.int32)
        for k, name in enumerate(other._vocab):
            if name not in index:
                index[name] = len(vocab)
                vocab.append(name)
            mapped[k] = index[name]
        n_b = other.n_nodes
        codes = np.hstack([np.repeat(self._codes, n_b, axis=0), np.tile(mapped[other._codes], (self.n_nodes, 1))])
        runs = np.hstack([np.repeat(self._runs, n_b, axis=0), np.tile(other._runs, (self.n_nodes, 1))])
        labels = [a + b for a in self.labels for b in other.labels]
        return KronGraph._make(adj, tuple(vocab), codes, runs, labels)

    def power(self, k: int) -> "KronGraph":
        """The ``k``-th Kronecker power (``power(1)`` is the graph itself); sparse all the way."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"power: must be an integer >= 1, got {short_repr(k)}")
        result = self
        for _ in range(int(k) - 1):
            result = result.kron(self)
        return result

    # ------------------------------------------------------------------ reading the graph

    def label_matrix(self, limit: int = LABEL_MATRIX_LIMIT) -> list[list[str]]:
        """Entry (i, j) is node j's label where the adjacency is non-zero, else ``""`` (dense: small graphs only).

        For the 3-node example this is ``[["a", "", ""], ["a", "b", ""], ["a", "b", "c"]]``, and the label matrix
        of ``kron(A, A)`` is the Kronecker "product" of that matrix with itself where products concatenate.
        """
        n = self.n_nodes
        if n > limit:
            raise ValueError(
                f"label_matrix: {n:,} nodes is above the limit of {limit:,} (a dense {n}x{n} matrix of strings); "
                "use .adjacency (sparse) and .labels instead, or pass a larger limit"
            )
        out = [[""] * n for _ in range(n)]
        labels = self.labels
        coo = self._adj.tocoo()
        for i, j in zip(coo.row.tolist(), coo.col.tolist()):
            out[i][j] = labels[j]
        return out

    def _input_expr(self, i: int) -> str:
        s = self._strict_lower()
        a, b = s.indptr[i], s.indptr[i + 1]
        if a == b:
            return "input"
        parts: list[str] = []
        for j, w in zip(s.indices[a:b].tolist(), s.data[a:b].tolist()):
            if w == 1:
                term, neg = f"X{j + 1}", False
            elif w == -1:
                term, neg = f"X{j + 1}", True
            else:
                term, neg = f"{format_number(abs(w))}*X{j + 1}", w < 0
            if not parts:
                parts.append(f"-{term}" if neg else term)
            else:
                parts.append(f"{'-' if neg else '+'} {term}")
        return " ".join(parts)

    def equation(self, i: int) -> str:
        """Node ``i``'s equation, e.g. ``X2 = (a(X1), b(X1))``; a pass-through stream shows its summed input."""
        if not 0 <= i < self.n_nodes:
            raise IndexError(f"node index {i} out of range 0..{self.n_nodes - 1}")
        inp = self._input_expr(i)
        v = self._vocab
        terms = [f"{v[c]}({inp})" if r else inp for c, r in zip(self._codes[i].tolist(), self._runs[i].tolist())]
        rhs = terms[0] if len(terms) == 1 else f"({', '.join(terms)})"
        return f"X{i + 1} = {rhs}"

    def dataflow(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The equations, one per node in execution order (``start``/``stop`` slice them for paging).

        The 3-node example gives ``X1 = a(input)``, ``X2 = b(X1)``, ``X3 = c(X1 + X2)``; its square begins
        ``X1 = (a(input), a(input))``, ``X2 = (a(X1), b(X1))``, ``X3 = (a(X1 + X2), c(X1 + X2))``.
        """
        stop = self.n_nodes if stop is None else min(stop, self.n_nodes)
        return [self.equation(i) for i in range(max(start, 0), stop)]

    def streams(self) -> list[str]:
        """The layer sequence each stream runs along the diagonal, one string per stream (``"aaabbbccc"``).

        Names are joined without a separator when every name is one character, with spaces otherwise; a step
        where the stream passes its input through shows as ``-``.
        """
        sep = "" if all(len(name) == 1 for name in self._vocab) else " "
        table = np.array(list(self._vocab) + [PASS_MARK], dtype=object)
        out = []
        for k in range(self.n_streams):
            idx = np.where(self._runs[:, k], self._codes[:, k], len(self._vocab))
            out.append(sep.join(table[idx].tolist()))
        return out

    def _depth_and_paths(self) -> tuple[np.ndarray, int]:
        """Depth of every node and the exact input-to-output path count, by DP in topological (index) order."""
        if self._dp is None:
            s = self._strict_lower()
            n = self.n_nodes
            ptr, idx = s.indptr, s.indices
            depth = np.zeros(n, dtype=np.int64)
            paths = np.empty(n, dtype=object)
            for i in range(n):
                a, b = ptr[i], ptr[i + 1]
                if a == b:
                    paths[i] = 1
                else:
                    cols = idx[a:b]
                    depth[i] = depth[cols].max() + 1
                    paths[i] = int(paths[cols].sum())
            depth.setflags(write=False)
            self._dp = (depth, int(paths[n - 1]))
        return self._dp

    @property
    def depth(self) -> np.ndarray:
        """Depth of every node: 0 for nodes reading the input, else 1 + the deepest node it reads."""
        return self._depth_and_paths()[0]

    def stats(self) -> GraphStats:
        depth, paths = self._depth_and_paths()
        applied = self._codes[self._runs]
        return GraphStats(
            nodes=self.n_nodes,
            edges=int(self._strict_lower().nnz),
            streams=self.n_streams,
            layer_applications=int(self._runs.sum()),
            distinct_layers=int(np.unique(applied).size),
            longest_path=int(depth[-1]) + 1,
            paths=paths,
        )

    # ------------------------------------------------------------------ drawing aids (data only)

    def layout(self) -> Layout:
        """Layered positions: x = depth, y = rank among the nodes of that depth, centred on 0."""
        depth = self.depth
        order = np.lexsort((np.arange(self.n_nodes), depth))
        counts = np.bincount(depth)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(self.n_nodes, dtype=np.float64)
        rank[order] = np.arange(self.n_nodes) - starts[depth[order]]
        y = -(rank - (counts[depth] - 1) / 2.0)
        return Layout(depth=np.asarray(depth), x=depth.astype(np.float64), y=y)

    def depth_summary(self) -> tuple[np.ndarray, dict[tuple[int, int], int]]:
        """For graphs too big to draw node by node: nodes per depth, and edge counts between depth levels.

        Returns ``(counts, edges)`` where ``counts[d]`` is the number of nodes at depth ``d`` and
        ``edges[(d_from, d_to)]`` the number of edges from a node at ``d_from`` into one at ``d_to``.
        """
        depth = self.depth
        coo = self._strict_lower().tocoo()
        levels = int(depth.max()) + 1
        # Encode each (from, to) level pair as one integer so a single bincount does the grouping.
        pair_counts = np.bincount(depth[coo.col] * levels + depth[coo.row], minlength=levels * levels)
        edges = {(int(k) // levels, int(k) % levels): int(pair_counts[k]) for k in np.flatnonzero(pair_counts)}
        return np.bincount(depth, minlength=levels), edges

    def blocks(self, max_cells: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """The adjacency downsampled to at most ``max_cells`` x ``max_cells`` blocks, without densifying it.

        Returns ``(density, starts)``: ``density[a, b]`` is the fraction of non-zero entries in block (a, b) and
        ``starts[a]`` the first node of block a (block a covers nodes ``starts[a]`` .. ``starts[a+1]-1``). A graph
        with at most ``max_cells`` nodes comes back at full resolution (one node per block).
        """
        n = self.n_nodes
        f = max(1, math.ceil(n / max_cells))
        # Prefer a block size that divides n (up to twice the smallest allowed): for a Kronecker power n = b**k
        # that is a power of b, so block edges fall on the self-similar structure instead of aliasing across it.
        f = next((d for d in range(f, 2 * f + 1) if n % d == 0), f)
        m = math.ceil(n / f)
        coo = self._adj.tocoo()
        counts = sp.coo_matrix(
            (np.ones_like(coo.data), (coo.row // f, coo.col // f)), shape=(m, m)
        ).toarray()
        starts = np.arange(m) * f
        sizes = np.minimum(starts + f, n) - starts
        return counts / np.outer(sizes, sizes), starts

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict:
        """A JSON-able description: adjacency as sparse triples, per-node layer names and which streams run."""
        coo = self._adj.tocoo()
        order = np.lexsort((coo.col, coo.row))
        return {
            "format": JSON_FORMAT,
            "version": 1,
            "nodes": self.n_nodes,
            "streams": self.n_streams,
            "labels": list(self.labels),
            "layers": [list(t) for t in self.layers],
            "runs": self._runs.astype(int).tolist(),
            "adjacency": {
                "shape": [self.n_nodes, self.n_nodes],
                "rows": coo.row[order].tolist(),
                "cols": coo.col[order].tolist(),
                "values": [float(v) for v in coo.data[order]],
            },
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> "KronGraph":
        if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
            raise ValueError(f"format: not a Kronecker graph file (expected \"format\": \"{JSON_FORMAT}\")")
        adj = data.get("adjacency") or {}
        try:
            n = int(adj["shape"][0])
            mat = sp.coo_matrix((adj["values"], (adj["rows"], adj["cols"])), shape=(n, int(adj["shape"][1])))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"adjacency: could not read the sparse triples ({exc})") from None
        return cls(mat, [tuple(t) for t in data.get("layers", [])], runs=data.get("runs"))

    @classmethod
    def from_json(cls, text: str) -> "KronGraph":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"format: not a Kronecker graph file ({exc.msg} at character {exc.pos})") from None
        except RecursionError:  # "[" * 100000: json recurses once per level
            raise ValueError("format: not a Kronecker graph file (JSON nested too deep)") from None
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KronGraph):
            return NotImplemented
        return (
            self.layers == other.layers
            and np.array_equal(self._runs, other._runs)
            and self._adj.shape == other._adj.shape
            and (self._adj != other._adj).nnz == 0
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"KronGraph(nodes={self.n_nodes}, edges={self._strict_lower().nnz}, streams={self.n_streams})"
