"""Kronecker-grown layer graphs: a small network as a lower-triangular matrix, grown by Kronecker products.

A network of ``n`` nodes is an ``n x n`` lower-triangular adjacency matrix ``A``. Row ``i`` describes node ``i``:
the diagonal ``A[i, i]`` says whether the node *runs its layer* (non-zero) or passes its summed input straight
through (zero), and each entry ``A[i, j]`` below the diagonal says node ``i`` reads node ``j``'s output, weighted
by that value (1 = a plain sum). Nodes with no inputs read the network input; the last node is the output.

Multiplying two such matrices with the Kronecker product grows a *self-similar* graph: node ``(i, j)`` of
``kron(A, B)`` is labelled by the concatenation of the two names (``"ab"``), holds one state per *stream*, and runs
``A``'s layer ``i`` on stream 1 and ``B``'s layer ``j`` on stream 2. Because the product of two lower-triangular
matrices is lower triangular (with the row-major node order), the grown graph is again a valid network, and a
handful of base layers is reused for many computational steps: ``kron(A, A)`` of the 3-node example runs 3 layers
as 9 + 9 = 18 layer applications. Powers of tens of thousands of nodes are built as ``scipy.sparse`` matrices,
because the number of non-zero entries grows as ``nnz(A) ** k`` while the dense size grows as ``n ** (2k)``.

This module is the science only (no streamlit, no store). :class:`KronGraph` is the graph; :class:`KronSpec` is
the frozen setup (base matrix, names, power, optional second graph) that the page, the CLI and the URL share;
:data:`PRESETS` is the registry of base graphs the page offers. ``python -m engine.kronecker show ...`` prints a
graph; ``python -m engine.kronecker train ...`` hands over to :mod:`engine.kronecker_net`.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from engine.png import font as png_font
from engine.specs import SpecMixin

#: Layer names appear inside equations such as ``a(X1 + X2)``, so they are kept to letters, digits and ``_``.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")
#: What :meth:`KronGraph.streams` shows for a stream step that passes its input through (zero diagonal).
PASS_MARK = "-"
#: The JSON format tag written by :meth:`KronGraph.to_dict` (so a loader can tell our files from others).
JSON_FORMAT = "fractal-lab.kron-graph"
#: :meth:`KronGraph.label_matrix` is a dense matrix of strings: refuse to build one bigger than this by default.
LABEL_MATRIX_LIMIT = 1024
#: :class:`KronSpec` keeps a setup drawable and trainable on a laptop: at most this many nodes ...
MAX_NODES = 65_536
#: ... and at most this many stored adjacency entries (diagonal included) in the grown graph.
MAX_ENTRIES = 4_000_000
#: Largest power a spec may ask for (``3 ** 12`` nodes would already exceed MAX_NODES).
MAX_POWER = 12
#: Largest base graph a spec accepts (the page edits it in a table).
MAX_BASE_NODES = 16


# ----------------------------------------------------------------------------------------------------------------
# validation helpers (shared by KronGraph and KronSpec so both speak with the same words)
# ----------------------------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
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


def _to_sparse(field: str, adjacency: Any) -> sp.csr_matrix:
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
            raise ValueError(f"{field}: {_where(coo.row[k], coo.col[k])} = {_fmt(coo.data[k])} {_ABOVE}")
    else:
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
        dense = np.empty((n, n), dtype=np.float64)
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if value is None or isinstance(value, (str, bytes, bool)):
                    shown = "empty" if value is None else repr(value)
                    raise ValueError(f"{field}: {_where(i, j)} is {shown}; {_FINITE}")
                try:
                    dense[i, j] = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{field}: {_where(i, j)} is {value!r}; {_FINITE}") from None
        bad = ~np.isfinite(dense)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"{field}: {_where(i, j)} is {dense[i, j]}; {_FINITE}")
        upper = np.triu(dense, k=1) != 0
        if upper.any():
            i, j = (int(v) for v in np.argwhere(upper)[0])
            raise ValueError(f"{field}: {_where(i, j)} = {_fmt(dense[i, j])} {_ABOVE}")
        mat = sp.csr_matrix(dense)
    mat.eliminate_zeros()
    mat.sort_indices()
    return mat


def _check_name(field: str, name: Any, node: int | None = None) -> str:
    where = f"node X{node + 1}'s " if node is not None else ""
    if name is None or (isinstance(name, str) and not name.strip()):
        raise ValueError(f"{field}: {where}layer name is empty; use 1 or more letters, digits or '_' (e.g. 'a')")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(
            f"{field}: {where}layer name {name!r} is not allowed; use 1 or more letters, digits or '_' "
            "(e.g. 'a', 'conv1')"
        )
    return name


def parse_names(text: str) -> tuple[str, ...]:
    """Layer names from a command line or URL: ``"abc"`` -> ``a, b, c``; ``"conv,mlp"`` -> ``conv, mlp``.

    Single characters are the common case (the papers write ``aa ab ac``), so a plain word is split into its
    characters; commas or spaces switch to whole-word names.
    """
    text = text.strip()
    if "," in text or any(ch.isspace() for ch in text):
        return tuple(part for part in re.split(r"[,\s]+", text) if part)
    return tuple(text)


def parse_matrix(text: str) -> list[list[float]]:
    """A matrix from text: JSON (``[[1,0],[1,1]]``) or rows separated by ``;`` or new lines (``1 0; 1 1``)."""
    text = text.strip()
    if not text:
        raise ValueError("base: the matrix is empty; write it as [[1,0],[1,1]] or '1 0; 1 1'")
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"base: could not read the matrix as JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(value, list) or not all(isinstance(r, list) for r in value):
            raise ValueError("base: must be a list of rows, e.g. [[1,0],[1,1]]")
        return value
    rows = []
    for line in re.split(r"[;\n]+", text):
        if line.strip():
            cells = [c for c in re.split(r"[,\s]+", line.strip()) if c]
            try:
                rows.append([float(c) for c in cells])
            except ValueError:
                raise ValueError(f"base: could not read row {line.strip()!r} as numbers") from None
    return rows


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
        adj = _to_sparse("adjacency", adjacency)
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
                per_node.append((_check_name("names", name, i),))
            elif isinstance(name, Sequence) and len(name) > 0:
                per_node.append(tuple(_check_name("names", part, i) for part in name))
            else:
                raise ValueError(f"names: node X{i + 1} needs a layer name (or one per stream), got {name!r}")
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
                    f"runs: node {i} has diagonal {_fmt(adj[i, i])} but runs={run_arr[i].tolist()}; the diagonal "
                    "must be non-zero exactly when every stream of the node runs its layer"
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
            raise ValueError(f"power: must be an integer >= 1, got {k!r}")
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
                term, neg = f"{_fmt(abs(w))}*X{j + 1}", w < 0
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
        return cls.from_dict(json.loads(text))

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


# ----------------------------------------------------------------------------------------------------------------
# exports (bytes for files: the CLI, the page's downloads and tests share them)
# ----------------------------------------------------------------------------------------------------------------

#: Up to this many nodes the adjacency is exported dense (n x n); above it as sparse (row, col, weight) triples,
#: because a dense 6,561-node matrix is 344 MB of float64 for 1.7 M non-zero entries.
DENSE_EXPORT_LIMIT = 1024


def adjacency_npy(graph: KronGraph, dense_limit: int = DENSE_EXPORT_LIMIT) -> tuple[str, bytes]:
    """``("adjacency.npy", dense float64 n x n)`` for small graphs, else ``("adjacency_coo.npy", (nnz, 3))``
    whose columns are row, column and weight (rows and columns counted from 0)."""
    buf = io.BytesIO()
    if graph.n_nodes <= dense_limit:
        np.save(buf, graph.adjacency.toarray())
        return "adjacency.npy", buf.getvalue()
    coo = graph.adjacency.tocoo()
    order = np.lexsort((coo.col, coo.row))
    np.save(buf, np.stack([coo.row[order], coo.col[order], coo.data[order]], axis=1).astype(np.float64))
    return "adjacency_coo.npy", buf.getvalue()


def adjacency_csv(graph: KronGraph, dense_limit: int = DENSE_EXPORT_LIMIT) -> tuple[str, bytes]:
    """``("adjacency.csv", ...)``: the dense matrix with node labels as header and first column, for small
    graphs; else ``("adjacency_coo.csv", ...)`` with one ``row,col,weight,row_label,col_label`` line per entry."""
    labels = graph.labels
    out = io.StringIO()
    if graph.n_nodes <= dense_limit:
        dense = graph.adjacency.toarray()
        out.write("," + ",".join(labels) + "\n")
        for i, row in enumerate(dense):
            out.write(labels[i] + "," + ",".join(_fmt(v) for v in row) + "\n")
        return "adjacency.csv", out.getvalue().encode()
    coo = graph.adjacency.tocoo()
    order = np.lexsort((coo.col, coo.row))
    out.write("row,col,weight,row_label,col_label\n")
    for i, j, w in zip(coo.row[order].tolist(), coo.col[order].tolist(), coo.data[order].tolist()):
        out.write(f"{i},{j},{_fmt(w)},{labels[i]},{labels[j]}\n")
    return "adjacency_coo.csv", out.getvalue().encode()


# ----------------------------------------------------------------------------------------------------------------
# pictures (PNG without kaleido: plain PIL)
# ----------------------------------------------------------------------------------------------------------------

#: Stream colours shared by the page's plotly drawing and the PNG (colour-blind-safe Okabe-Ito order).
STREAM_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")


def adjacency_png(graph: KronGraph, max_cells: int = 512, cell: int | None = None) -> bytes:
    """The adjacency as a PNG (dark = non-zero; blocks shaded by density when downsampled)."""
    from PIL import Image

    density, _ = graph.blocks(max_cells)
    m = density.shape[0]
    cell = cell or max(1, 512 // m)
    pixels = (255 - np.clip(density, 0, 1) * 230).astype(np.uint8)
    img = Image.fromarray(pixels, mode="L").resize((m * cell, m * cell), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def dataflow_png(graph: KronGraph, max_nodes: int = 250, max_edges: int = 5000) -> bytes:
    """The layered data-flow drawing as a PNG: nodes by depth, grey edges, one coloured dot per stream.

    Graphs above ``max_nodes`` nodes or ``max_edges`` edges are drawn as their depth-level summary (one bar per
    depth with its node count; arcs between depths, wider for more edges), and the picture says so.
    """
    from PIL import Image, ImageDraw

    font, small = png_font(14), png_font(11)
    if graph.n_nodes <= max_nodes and graph._strict_lower().nnz <= max_edges:
        lay = graph.layout()
        n_levels = int(lay.depth.max()) + 1
        height_nodes = int(np.bincount(lay.depth).max())
        s = graph.n_streams
        dx, dy, r = 150, max(34, 14 * s + 10), 6
        w = 80 + dx * max(n_levels - 1, 1) + 80
        h = 80 + dy * max(height_nodes - 1, 1) + 60
        img = Image.new("RGB", (w, h), "white")
        d = ImageDraw.Draw(img)
        ymid = h / 2
        px = 80 + lay.x * dx
        py = ymid - lay.y * dy
        coo = graph._strict_lower().tocoo()
        for i, j in zip(coo.row.tolist(), coo.col.tolist()):
            d.line([(px[j], py[j]), (px[i], py[i])], fill=(190, 190, 190), width=1)
        labels = graph.labels
        for i in range(graph.n_nodes):
            for k in range(s):
                cy = py[i] + (k - (s - 1) / 2) * (2 * r + 2)
                color = STREAM_COLORS[k % len(STREAM_COLORS)]
                box = [px[i] - r, cy - r, px[i] + r, cy + r]
                if graph.runs[i, k]:
                    d.ellipse(box, fill=color)
                else:
                    d.ellipse(box, outline=color, width=2)
            d.text((px[i] + r + 4, py[i] - 8), labels[i], fill="black", font=small)
        d.text((10, 10), f"{graph.n_nodes} nodes, {coo.nnz} edges, {s} stream(s)", fill="black", font=font)
        for k in range(s):
            d.ellipse([10 + 80 * k, 34, 22 + 80 * k, 46], fill=STREAM_COLORS[k % len(STREAM_COLORS)])
            d.text((26 + 80 * k, 32), f"stream {k + 1}", fill="black", font=small)
    else:
        counts, edges = graph.depth_summary()
        n_levels = len(counts)
        dx = 110
        w, h = 80 + dx * max(n_levels - 1, 1) + 80, 520
        img = Image.new("RGB", (w, h), "white")
        d = ImageDraw.Draw(img)
        biggest = max(int(counts.max()), 1)
        top = math.log1p(max(edges.values())) if edges else 1.0
        xs = 80 + np.arange(n_levels) * dx
        base_y = h - 60
        bar_h = 200.0
        # Edges between levels as arcs above the bars: the farther they jump, the higher the arc.
        for (a, b), c in sorted(edges.items(), key=lambda kv: kv[1]):
            width = 1 + int(6 * math.log1p(c) / top)
            lift = 40 + 180 * (b - a) / max(n_levels - 1, 1)
            y0 = base_y - bar_h * counts[a] / biggest
            y1 = base_y - bar_h * counts[b] / biggest
            pts = []
            for t in np.linspace(0, 1, 24):
                x = (1 - t) * xs[a] + t * xs[b]
                y = (1 - t) * y0 + t * y1 - 4 * t * (1 - t) * lift
                pts.append((float(x), float(y)))
            d.line(pts, fill=(175, 175, 175), width=width)
        for lvl, c in enumerate(counts.tolist()):
            d.rectangle([xs[lvl] - 16, base_y - bar_h * c / biggest - 2, xs[lvl] + 16, base_y],
                        fill=STREAM_COLORS[0])
            d.text((xs[lvl] - 16, base_y + 6), f"{c:,}", fill="black", font=small)
            d.text((xs[lvl] - 16, base_y + 22), f"d{lvl}", fill=(90, 90, 90), font=small)
        d.text(
            (10, 10),
            f"{graph.n_nodes:,} nodes, {graph._strict_lower().nnz:,} edges: too many to draw one by one; summary "
            "(bar = nodes at that depth, arc width = edges between two depths, log scale)",
            fill="black",
            font=font,
        )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------------------------
# presets and the spec
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BasePreset:
    """A named base graph the page offers (a registry entry)."""

    matrix: tuple[tuple[float, ...], ...]
    names: tuple[str, ...]
    about: str

    def graph(self) -> KronGraph:
        return KronGraph(self.matrix, self.names)


PRESETS: dict[str, BasePreset] = {
    "example": BasePreset(
        ((1, 0, 0), (1, 1, 0), (1, 1, 1)), ("a", "b", "c"),
        "The worked example: X1 = a(input), X2 = b(X1), X3 = c(X1 + X2).",
    ),
    "chain": BasePreset(
        ((1, 0, 0), (1, 1, 0), (0, 1, 1)), ("a", "b", "c"),
        "A plain 3-layer chain: X1 = a(input), X2 = b(X1), X3 = c(X2).",
    ),
    "two-node": BasePreset(
        ((1, 0), (1, 1)), ("a", "b"),
        "The smallest interesting graph: X1 = a(input), X2 = b(X1).",
    ),
    "dense triangle": BasePreset(
        ((1, 0, 0, 0), (1, 1, 0, 0), (1, 1, 1, 0), (1, 1, 1, 1)), ("a", "b", "c", "d"),
        "Every node reads every earlier node (DenseNet-style), 4 layers.",
    ),
}

Matrix = tuple[tuple[float, ...], ...]


def _matrix_tuple(value: np.ndarray) -> Matrix:
    return tuple(tuple(float(x) for x in row) for row in np.asarray(value).tolist())


@dataclass(frozen=True)
class KronSpec(SpecMixin):
    """A graph setup: ``base ** power`` (Kronecker power), then ``(x) second`` when a second graph is given.

    The page, the URL, the CLI and the training spec all describe a graph with this one object. Its size is
    capped (``MAX_NODES`` nodes, ``MAX_ENTRIES`` stored entries) so that a link cannot ask a laptop for more
    than it can draw; :class:`KronGraph` itself has no cap.
    """

    base: Matrix = PRESETS["example"].matrix
    names: tuple[str, ...] = PRESETS["example"].names
    power: int = 2
    second: Matrix | None = None
    second_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.names, str):
            object.__setattr__(self, "names", tuple(self.names))
        if isinstance(self.second_names, str):
            object.__setattr__(self, "second_names", tuple(self.second_names))
        base = _to_sparse("base", self.base)
        object.__setattr__(self, "base", _matrix_tuple(base.toarray()))
        object.__setattr__(self, "names", tuple(self.names))
        n = base.shape[0]
        if n > MAX_BASE_NODES:
            raise ValueError(f"base: has {n} nodes; allowed 1..{MAX_BASE_NODES}")
        if len(self.names) != n:
            raise ValueError(f"names: got {len(self.names)} names for {n} nodes; give exactly one name per node")
        for i, name in enumerate(self.names):
            _check_name("names", name, i)
        if isinstance(self.power, bool) or not isinstance(self.power, int) or not 1 <= self.power <= MAX_POWER:
            raise ValueError(f"power: must be an integer in 1..{MAX_POWER}, got {self.power!r}")
        nodes, entries = n ** self.power, base.nnz ** self.power
        if self.second is None:
            if self.second_names is not None:
                raise ValueError("second_names: given without a second matrix; give both or neither")
        else:
            second = _to_sparse("second", self.second)
            object.__setattr__(self, "second", _matrix_tuple(second.toarray()))
            m = second.shape[0]
            if m > MAX_BASE_NODES:
                raise ValueError(f"second: has {m} nodes; allowed 1..{MAX_BASE_NODES}")
            if self.second_names is None or len(self.second_names) != m:
                got = 0 if self.second_names is None else len(self.second_names)
                raise ValueError(f"second_names: got {got} names for {m} nodes; give exactly one name per node")
            object.__setattr__(self, "second_names", tuple(self.second_names))
            for i, name in enumerate(self.second_names):
                _check_name("second_names", name, i)
            nodes, entries = nodes * m, entries * second.nnz
        if nodes > MAX_NODES or entries > MAX_ENTRIES:
            raise ValueError(
                f"power: {self.power} grows this base to {nodes:,} nodes and {entries:,} stored entries; allowed at "
                f"most {MAX_NODES:,} nodes and {MAX_ENTRIES:,} entries (largest power here: {self.max_power()})"
            )

    def max_power(self) -> int:
        """The largest power that stays within MAX_NODES / MAX_ENTRIES for this base (and second graph)."""
        base = _to_sparse("base", self.base)
        n, e = base.shape[0], base.nnz
        m, f = 1, 1
        if self.second is not None:
            second = _to_sparse("second", self.second)
            m, f = second.shape[0], second.nnz
        k = 1
        while k < MAX_POWER and n ** (k + 1) * m <= MAX_NODES and e ** (k + 1) * f <= MAX_ENTRIES:
            k += 1
        return k

    @property
    def n_nodes(self) -> int:
        n = len(self.base) ** self.power
        return n * (len(self.second) if self.second is not None else 1)

    def base_graph(self) -> KronGraph:
        return KronGraph(self.base, self.names)

    def second_graph(self) -> KronGraph | None:
        return None if self.second is None else KronGraph(self.second, self.second_names)

    def build(self) -> KronGraph:
        """The graph this spec describes."""
        g = self.base_graph().power(self.power)
        h = self.second_graph()
        return g if h is None else g.kron(h)

    def describe(self) -> str:
        """A short formula such as ``abc^2`` or ``abc^1 (x) xy``."""
        sep = "" if all(len(x) == 1 for x in self.names) else ","
        text = sep.join(self.names) + (f"^{self.power}" if self.power != 1 else "")
        if self.second is not None:
            sep2 = "" if all(len(x) == 1 for x in self.second_names) else ","
            text += " ⊗ " + sep2.join(self.second_names)
        return text

    @classmethod
    def from_preset(cls, name: str, power: int = 2) -> "KronSpec":
        if name not in PRESETS:
            raise ValueError(f"preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        p = PRESETS[name]
        return cls(base=p.matrix, names=p.names, power=power)


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------


def add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """The graph flags shared by ``show`` and ``train`` (engine.kronecker_net may reuse them)."""
    parser.add_argument("--base", default=json.dumps([list(map(int, r)) for r in PRESETS["example"].matrix]),
                        help='base adjacency, e.g. "[[1,0,0],[1,1,0],[1,1,1]]" or "1 0 0; 1 1 0; 1 1 1"')
    parser.add_argument("--preset", choices=sorted(PRESETS), help="use a preset base graph instead of --base")
    parser.add_argument("--names", default=None, help='layer names: "abc" or "conv,mlp,attn" (default a, b, c...)')
    parser.add_argument("--power", type=int, default=2, help=f"Kronecker power, 1..{MAX_POWER} (default 2)")
    parser.add_argument("--second", default=None, help="a second base matrix to multiply with (multi-fractal)")
    parser.add_argument("--second-names", default=None, help="layer names of the second graph")


def default_names(n: int, offset: int = 0) -> tuple[str, ...]:
    """Layer names a, b, c... for n nodes (from letter `offset`), used when a matrix comes without names."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return tuple(letters[(offset + i) % 26] for i in range(n))


def spec_from_args(args: argparse.Namespace) -> KronSpec:
    """Build the :class:`KronSpec` the graph flags describe (raises ValueError with the field name)."""
    if args.preset:
        p = PRESETS[args.preset]
        base, names = [list(r) for r in p.matrix], p.names
        if args.names:
            names = parse_names(args.names)
    else:
        base = parse_matrix(args.base)
        names = parse_names(args.names) if args.names else default_names(len(base))
    second = second_names = None
    if args.second:
        second = parse_matrix(args.second)
        second_names = (parse_names(args.second_names) if args.second_names
                        else default_names(len(second), offset=len(base)))
    return KronSpec(base=base, names=names, power=args.power, second=second, second_names=second_names)


def format_report(graph: KronGraph, max_equations: int = 50) -> str:
    """Labels, equations, streams and stats as the CLI prints them."""
    lines = []
    n = graph.n_nodes
    shown = min(n, max_equations) if max_equations > 0 else n
    lines.append(f"Labels ({n:,} nodes):")
    lines.append("  " + " ".join(graph.labels[:shown]) + (f" ... ({n - shown:,} more)" if shown < n else ""))
    lines.append("Equations:")
    lines.extend("  " + eq for eq in graph.dataflow(0, shown))
    if shown < n:
        lines.append(f"  ... {n - shown:,} more (use --max-equations 0 for all)")
    lines.append("Streams:")
    for k, s in enumerate(graph.streams()):
        text = s if len(s) <= 400 or max_equations == 0 else s[:400] + f"... ({len(s):,} characters)"
        lines.append(f"  stream {k + 1}: {text}")
    lines.append("Stats:")
    for key, value in graph.stats().as_dict().items():
        lines.append(f"  {key.replace('_', ' ')}: {value:,}")
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from engine import kronecker_net  # lazy: torch is only needed for training

        return kronecker_net.main(argv[1:]) or 0
    parser = argparse.ArgumentParser(
        prog="python -m engine.kronecker",
        description="Kronecker-grown layer graphs. 'show' prints a graph; 'train' trains it "
                    "(see python -m engine.kronecker train --help).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print labels, equations, streams and stats of a graph")
    add_graph_arguments(show)
    show.add_argument("--max-equations", type=int, default=50, help="equations/labels to print (0 = all)")
    show.add_argument("--json", dest="json_out", default=None, help="also write the graph as JSON to this file")
    sub.add_parser("train", help="train the graph as a network (engine.kronecker_net)", add_help=False)
    args = parser.parse_args(argv)
    try:
        spec = spec_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    graph = spec.build()
    print(f"Graph {spec.describe()}")
    print(format_report(graph, args.max_equations))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            fh.write(graph.to_json())
        print(f"Wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
