"""Turn a Kronecker-grown layer graph into a trainable network, and compare it with fair baselines.

A :class:`~engine.kronecker.KronGraph` is a lower-triangular adjacency matrix: the diagonal says "run this node's
layer", the entries below it weight the node's inputs. A Kronecker power of a small base graph has nodes that are
*tuples* of base layers: node ``ab`` runs layer ``a`` on stream 1 and layer ``b`` on stream 2. This module builds
that network in PyTorch (:class:`KroneckerNet`) and trains it beside the baselines the essay's question needs
(:func:`train_compare`): can a shallower, more parallel network that reuses a few layers through a self-similar
graph learn as well as a deeper plain one, and do learned edge weights help?

How a :class:`KroneckerNet` computes (``S`` streams, one state per stream at every node):

- nodes with no inputs read the embedded input (the same embedding on every stream);
- any other node's input is the weighted sum of the states of the nodes on its row, the same weights for every
  stream; the weights are the adjacency values (``edge_weights="none"``), learned scalars per edge initialised to
  the adjacency values (``"static"``), or a gate computed from the incoming states (``"dynamic"``, see below);
- a node whose diagonal entry is non-zero applies its layer on each stream (layer ``x`` of label ``xy`` on stream
  1, ``y`` on stream 2); a zero diagonal passes the summed input through;
- the last node is the output: its streams are combined by ``mean`` or ``concat``, normalised, and fed to a task
  head.

**Dynamic edge weights.** Like a mixture-of-experts router whose experts are a node's incoming edges: for node
``n`` with incoming edges from nodes ``j``, ``score_nj = q_n . LN(h_j) / sqrt(S * width) + b_nj`` where ``h_j`` is
the concatenation of ``j``'s stream states, ``LN`` a parameter-free layer norm per stream, ``q_n`` a learned
vector per node and ``b_nj`` a learned bias per edge (initialised to ``log A_nj`` when all of the node's adjacency
values are positive, so that the gate starts at the adjacency's proportions; otherwise 0). The weights are
``softmax_j(score_nj)`` over the node's incoming edges: **for every node, example (and token, for sequence
states) the weights are positive and sum to 1** — a convex mixture of the inputs, computed per example for vector
states and per token for token states.

**Tied or untied.** Tied (``tied=True``): one layer per distinct base-layer name, reused at every node and stream
that names it — the network is an iterated function system of a few maps, and its layer parameters are exactly
the base layers'. Untied: one independent layer per (node, stream) that runs a layer.

**Batched execution.** Nodes at the same depth (longest path from a source) do not depend on each other, so they
run together: their inputs are gathered with one ``index_select`` per source depth and summed with one
``index_add``; tied layers run one call per layer name per depth on the stacked (node, stream) states, untied
layers one batched matmul (``bmm`` over parameters gathered per (node, stream)) per depth.
:meth:`KroneckerNet.forward_reference` computes node by node, stream by stream, so tests can check that the
batched path gives the same output.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import math
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.device import resolve_device
from engine.errors import Cancelled
from engine.kronecker import KronSpec, add_graph_arguments, spec_from_args
from engine.specs import SpecMixin

EDGE_WEIGHTS = ("none", "static", "dynamic")
COMBINES = ("mean", "concat")
BASELINES = ("base", "sequential", "untied")
MAX_NODES = 1024  # the largest grown graph trained here: a few minutes of CPU time at tiny widths
MLP_RATIO = 2  # hidden width of an MLP (and of a transformer block's MLP) = MLP_RATIO * width


# ---------------------------------------------------------------------------------------------------------------
# Tasks: name -> what the data looks like and how to load it
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskData:
    """Tensors of one task: inputs ``(N, T, F)`` float32 (T tokens of F features), integer labels ``(N,)`` for a
    per-example task or ``(N, T)`` for a per-token task."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class Task:
    """A registry entry: the shape of the inputs, the classes, and a deterministic loader.

    Every input is ``T`` tokens of ``F`` features so both block types can read it: MLP blocks see the flattened
    ``T * F`` vector (one state per example), transformer blocks see the ``T`` tokens (one state per token).
    ``per_token`` tasks predict one class per token, the others one class per example. The data never depends on
    the training seed (the split and the generated sequences use a fixed seed), so runs with different seeds are
    scored on the same test set.
    """

    name: str
    description: str
    seq_len: int
    features: int
    n_classes: int
    per_token: bool
    default_block: str
    loader: Callable[[], TaskData]
    metric: str


def _load_digits() -> TaskData:
    """sklearn's 8x8 digits via ``engine.data`` (fixed seeded 80/20 split); each image row is one token."""
    from engine.data import load_dataset

    ds = load_dataset("digits", seed=0)

    def tokens(x: Any) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        return t.reshape(t.shape[0], 8, 8)

    def labels(y: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(y), dtype=torch.long)

    return TaskData(tokens(ds.x_train), labels(ds.y_train), tokens(ds.x_test), labels(ds.y_test))


SORT_LEN, SORT_VOCAB, SORT_TRAIN, SORT_TEST = 8, 10, 4000, 1000


def make_sort_data(n: int, length: int = SORT_LEN, vocab: int = SORT_VOCAB, seed: int = 0):
    """Sequence sorting: ``length`` tokens drawn uniformly from ``vocab`` symbols; the target at position ``i`` is
    the ``i``-th smallest input token. Deterministic from ``seed``; returns one-hot inputs and the targets.

    Sorting needs every position to look at all the others (count how many tokens are smaller), so it is a task
    where attention matters and depth helps, yet it is generated in milliseconds with nothing to download.
    """
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (n, length), generator=gen)
    return F.one_hot(tokens, vocab).float(), torch.sort(tokens, dim=1).values


def _load_sort() -> TaskData:
    x, y = make_sort_data(SORT_TRAIN + SORT_TEST, seed=0)
    return TaskData(x[:SORT_TRAIN], y[:SORT_TRAIN], x[SORT_TRAIN:], y[SORT_TRAIN:])


TASKS: dict[str, Task] = {
    "digits": Task("digits", "8x8 handwritten digits, 10 classes (sklearn), 80/20 split", 8, 8, 10, False, "mlp",
                   _load_digits, "test accuracy (fraction of images)"),
    "sort": Task("sort", f"sort {SORT_LEN} tokens over {SORT_VOCAB} symbols (generated)", SORT_LEN, SORT_VOCAB,
                 SORT_VOCAB, True, "transformer", _load_sort, "test accuracy (fraction of output tokens)"),
}


# ---------------------------------------------------------------------------------------------------------------
# Layer banks: M blocks with their parameters stacked, so one call can run many of them at once
# ---------------------------------------------------------------------------------------------------------------


def _uniform_(t: torch.Tensor, fan_in: int) -> torch.Tensor:
    """nn.Linear's default scale, applied to each stacked weight independently."""
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        return t.uniform_(-bound, bound)


class _Bank(nn.Module):
    """M blocks of one kind whose parameters are stacked along a leading dimension.

    ``apply(x, which)`` runs blocks on a stacked input ``x`` of shape ``(G, ...)``: with ``which`` an int it runs
    that one block on all of ``x`` (``G == 1``: tied layers, a view of the block's parameters, no copy); with
    ``which`` a LongTensor of length ``G`` it runs block ``which[g]`` on ``x[g]`` (untied layers, parameters
    gathered and applied with batched matmuls). A forward pass that calls tied blocks many times passes
    ``views=bank.unbound()`` (each parameter split once per pass): one backward ``stack`` per parameter instead of a
    full-size zero-filled gradient per call, which on small graphs is most of the backward's time.
    """

    def unbound(self) -> dict[str, tuple[torch.Tensor, ...]]:
        return {n: p.unsqueeze(1).unbind(0) for n, p in self.named_parameters(recurse=False)}

    def _params(self, which: int | torch.Tensor, views: dict | None = None) -> dict[str, torch.Tensor]:
        if isinstance(which, int):
            if views is not None:
                return {n: v[which] for n, v in views.items()}
            return {n: p[which:which + 1] for n, p in self.named_parameters(recurse=False)}
        return {n: p.index_select(0, which) for n, p in self.named_parameters(recurse=False)}

    def per_block_parameters(self) -> int:
        return sum(p[0].numel() for p in self.parameters(recurse=False))


class MLPBank(_Bank):
    """Pre-norm residual MLP blocks: ``x + W2 gelu(W1 LN(x) + b1) + b2`` (states of shape ``(..., width)``)."""

    def __init__(self, count: int, width: int, heads: int = 1):
        super().__init__()
        hidden = MLP_RATIO * width
        self.width = width
        self.ln_w = nn.Parameter(torch.ones(count, width))
        self.ln_b = nn.Parameter(torch.zeros(count, width))
        self.w1 = nn.Parameter(_uniform_(torch.empty(count, width, hidden), width))
        self.b1 = nn.Parameter(torch.zeros(count, hidden))
        self.w2 = nn.Parameter(_uniform_(torch.empty(count, hidden, width), hidden))
        self.b2 = nn.Parameter(torch.zeros(count, width))

    def apply(self, x: torch.Tensor, which: int | torch.Tensor, views: dict | None = None) -> torch.Tensor:
        p = self._params(which, views)
        g, shape = x.shape[0], x.shape
        h = x.reshape(g, -1, self.width)
        y = F.layer_norm(h, (self.width,)) * p["ln_w"][:, None] + p["ln_b"][:, None]
        y = F.gelu(torch.baddbmm(p["b1"][:, None], y, p["w1"]))
        return (h + torch.baddbmm(p["b2"][:, None], y, p["w2"])).reshape(shape)


class TransformerBank(_Bank):
    """Pre-norm transformer blocks (bidirectional multi-head self-attention, then an MLP), on token states of shape
    ``(G, B, T, width)``."""

    def __init__(self, count: int, width: int, heads: int = 2):
        super().__init__()
        if width % heads:
            raise ValueError(f"heads: must divide width ({width}), got {heads}")
        hidden = MLP_RATIO * width
        self.width, self.heads = width, heads
        self.ln1_w = nn.Parameter(torch.ones(count, width))
        self.ln1_b = nn.Parameter(torch.zeros(count, width))
        self.wqkv = nn.Parameter(_uniform_(torch.empty(count, width, 3 * width), width))
        self.bqkv = nn.Parameter(torch.zeros(count, 3 * width))
        self.wo = nn.Parameter(_uniform_(torch.empty(count, width, width), width))
        self.bo = nn.Parameter(torch.zeros(count, width))
        self.ln2_w = nn.Parameter(torch.ones(count, width))
        self.ln2_b = nn.Parameter(torch.zeros(count, width))
        self.w1 = nn.Parameter(_uniform_(torch.empty(count, width, hidden), width))
        self.b1 = nn.Parameter(torch.zeros(count, hidden))
        self.w2 = nn.Parameter(_uniform_(torch.empty(count, hidden, width), hidden))
        self.b2 = nn.Parameter(torch.zeros(count, width))

    def apply(self, x: torch.Tensor, which: int | torch.Tensor, views: dict | None = None) -> torch.Tensor:
        p = self._params(which, views)
        g, b, t, w = x.shape
        nh, d = self.heads, w // self.heads
        h = x.reshape(g, b * t, w)
        y = F.layer_norm(h, (w,)) * p["ln1_w"][:, None] + p["ln1_b"][:, None]
        qkv = torch.baddbmm(p["bqkv"][:, None], y, p["wqkv"]).reshape(g, b, t, 3, nh, d)
        q, k, v = (qkv[:, :, :, i].transpose(2, 3) for i in range(3))  # (g, b, heads, t, d)
        att = F.scaled_dot_product_attention(q, k, v).transpose(2, 3).reshape(g, b * t, w)
        h = h + torch.baddbmm(p["bo"][:, None], att, p["wo"])
        y = F.layer_norm(h, (w,)) * p["ln2_w"][:, None] + p["ln2_b"][:, None]
        y = F.gelu(torch.baddbmm(p["b1"][:, None], y, p["w1"]))
        return (h + torch.baddbmm(p["b2"][:, None], y, p["w2"])).reshape(g, b, t, w)


BLOCKS: dict[str, type[_Bank]] = {"mlp": MLPBank, "transformer": TransformerBank}
# MLP blocks see one state vector per example; transformer blocks one state per token.
TOKEN_STATES = {"mlp": False, "transformer": True}


def block_parameters(block: str, width: int, heads: int = 2) -> int:
    """Parameters of one block of this kind and width (what every tied base layer costs)."""
    return BLOCKS[block](1, width, heads).per_block_parameters()


# ---------------------------------------------------------------------------------------------------------------
# The graph, compiled into index tensors for batched execution
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class GraphPlan:
    """A layer graph compiled for execution: edges, depths, per-level index tensors.

    Built from a KronGraph (:meth:`from_graph`) or directly (:meth:`chain` for a plain sequential stack).
    ``layers[n][s]`` is the layer name node ``n`` carries on stream ``s``; ``runs[n, s]`` says whether that stream
    applies it (else it passes its summed input through: a zero diagonal in that stream's factor graph). Edges
    are the non-zero entries below the diagonal, ordered by (row, column).
    """

    layers: list[tuple[str, ...]]
    runs: np.ndarray
    edge_dst: np.ndarray
    edge_src: np.ndarray
    edge_val: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.layers)
        if n == 0:
            raise ValueError("graph: needs at least one node")
        streams = {len(t) for t in self.layers}
        if len(streams) != 1 or 0 in streams:
            raise ValueError(f"graph: every node needs the same number (>= 1) of stream layers, got {streams}")
        if np.any(self.edge_src >= self.edge_dst):
            raise ValueError("graph: edges must point from a lower to a higher node index (lower-triangular)")
        self.n = n
        self.streams = streams.pop()
        self.runs = np.asarray(self.runs, dtype=bool).reshape(n, self.streams)
        depth = np.zeros(n, dtype=np.int64)
        has_input = np.zeros(n, dtype=bool)
        for d, s in zip(self.edge_dst, self.edge_src):  # edges sorted by dst, and src < dst
            depth[d] = max(depth[d], depth[s] + 1)
            has_input[d] = True
        self.depth = depth
        self.sources = ~has_input
        self.levels = [np.flatnonzero(depth == lv) for lv in range(int(depth.max()) + 1)]

    @classmethod
    def from_graph(cls, graph: Any) -> "GraphPlan":
        import scipy.sparse as sp

        if isinstance(graph, GraphPlan):
            return graph
        a = sp.coo_matrix(graph.adjacency, dtype=np.float64)
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"graph: adjacency must be square, got {a.shape}")
        a = sp.csr_matrix(a)
        a.sum_duplicates()
        a.eliminate_zeros()
        coo = a.tocoo()
        n = a.shape[0]
        diag = np.zeros(n)
        on = coo.row == coo.col
        diag[coo.row[on]] = coo.data[on]
        below = coo.row > coo.col
        if np.any(coo.row < coo.col):
            raise ValueError("graph: adjacency has entries above the diagonal")
        order = np.lexsort((coo.col[below], coo.row[below]))
        layers = [tuple(t) for t in graph.layers]
        if len(layers) != n:
            raise ValueError(f"graph: {len(layers)} node labels for {n} nodes")
        runs = getattr(graph, "runs", None)
        if runs is None:
            runs = np.repeat((diag != 0)[:, None], len(layers[0]), axis=1)
        return cls(layers, np.asarray(runs, dtype=bool), coo.row[below][order].astype(np.int64),
                   coo.col[below][order].astype(np.int64), coo.data[below][order].astype(np.float64))

    @classmethod
    def chain(cls, depth: int) -> "GraphPlan":
        """A plain sequential stack of ``depth`` distinct layers ``L0 -> L1 -> ...`` (one stream)."""
        dst = np.arange(1, depth, dtype=np.int64)
        return cls([(f"L{i}",) for i in range(depth)], np.ones((depth, 1), dtype=bool), dst, dst - 1,
                   np.ones(depth - 1))

    @property
    def edges(self) -> int:
        return len(self.edge_dst)

    @property
    def applications(self) -> int:
        """Layer applications per forward pass: one per (node, stream) that runs its layer."""
        return int(self.runs.sum())

    @property
    def layer_names(self) -> list[str]:
        """Distinct layer names in order of first use (node order, then stream order): the tied layers."""
        seen: dict[str, None] = {}
        for n, names in enumerate(self.layers):
            for s, name in enumerate(names):
                if self.runs[n, s]:
                    seen.setdefault(name, None)
        return list(seen)

    @property
    def running_levels(self) -> int:
        """The number of sequential layer steps: depth levels that contain at least one running node."""
        return sum(bool(self.runs[lv].any()) for lv in self.levels)


# ---------------------------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------------------------


class _Stem(nn.Module):
    """Embed ``(B, T, F)`` inputs: one vector per example (flattened) or one per token (plus positions)."""

    def __init__(self, seq_len: int, features: int, width: int, tokens: bool):
        super().__init__()
        self.tokens = tokens
        if tokens:
            self.proj = nn.Linear(features, width)
            self.pos = nn.Parameter(torch.randn(seq_len, width) * 0.02)
        else:
            self.proj = nn.Linear(seq_len * features, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x) + self.pos if self.tokens else self.proj(x.flatten(1))


class _Head(nn.Module):
    """Normalise the combined output state, then classify per example (mean over tokens) or per token."""

    def __init__(self, dim: int, seq_len: int, n_classes: int, tokens: bool, per_token: bool):
        super().__init__()
        self.tokens, self.per_token, self.seq_len, self.n_classes = tokens, per_token, seq_len, n_classes
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, n_classes * seq_len if (per_token and not tokens) else n_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.norm(h)
        if self.tokens and not self.per_token:
            h = h.mean(1)
        y = self.fc(h)
        if self.per_token and not self.tokens:
            y = y.reshape(y.shape[0], self.seq_len, self.n_classes)
        return y


class KroneckerNet(nn.Module):
    """A network whose dataflow is a (Kronecker-grown) layer graph; see the module docstring for the semantics.

    ``graph``: a ``KronGraph`` (its ``.adjacency``, ``.layers`` and ``.runs``) or a :class:`GraphPlan`.
    ``seq_len``/``features``: inputs are ``(B, seq_len, features)``; ``n_classes`` and ``per_token`` shape the
    head (logits ``(B, C)`` or ``(B, T, C)``). ``block``: ``"mlp"`` (one state vector per example) or
    ``"transformer"`` (one state per token). ``tied``, ``edge_weights``, ``combine``: see the module docstring.
    """

    def __init__(self, graph: Any, *, seq_len: int = 8, features: int = 8, n_classes: int = 10,
                 per_token: bool = False, block: str = "mlp", tied: bool = True, edge_weights: str = "none",
                 combine: str = "mean", width: int = 32, heads: int = 2):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block: one of {sorted(BLOCKS)}, got {block!r}")
        if edge_weights not in EDGE_WEIGHTS:
            raise ValueError(f"edge_weights: one of {EDGE_WEIGHTS}, got {edge_weights!r}")
        if combine not in COMBINES:
            raise ValueError(f"combine: one of {COMBINES}, got {combine!r}")
        plan = GraphPlan.from_graph(graph)
        self.plan = plan
        self.block, self.tied, self.edge_weights, self.combine = block, tied, edge_weights, combine
        self.width, self.heads, self.tokens = width, heads, TOKEN_STATES[block]
        self.config = dict(seq_len=seq_len, features=features, n_classes=n_classes, per_token=per_token,
                           block=block, tied=tied, edge_weights=edge_weights, combine=combine, width=width,
                           heads=heads)
        S, N = plan.streams, plan.n
        self.stem = _Stem(seq_len, features, width, self.tokens)
        self.head = _Head(width * (S if combine == "concat" else 1), seq_len, n_classes, self.tokens, per_token)

        # Which bank entry each (node, stream) pair uses; -1 = pass-through.
        names = plan.layer_names
        self.layer_names = names if tied else [f"{plan.layers[n][s]}@{n}.{s}" for n in range(N)
                                               for s in range(S) if plan.runs[n, s]]
        pair_layer = np.full(N * S, -1, dtype=np.int64)
        k = 0
        for n in range(N):
            for s in range(S):
                if plan.runs[n, s]:
                    pair_layer[n * S + s] = names.index(plan.layers[n][s]) if tied else k
                    k += 1
        self.pair_layer = pair_layer
        self.layers = BLOCKS[block](max(len(self.layer_names), 1), width, heads) if self.layer_names else None

        # Edge weights.
        E = plan.edges
        self.register_buffer("adjacency_values", torch.as_tensor(plan.edge_val, dtype=torch.float32))
        self.edge_weight = nn.Parameter(self.adjacency_values.clone()) if edge_weights == "static" else None
        if edge_weights == "dynamic":
            self.gate_query = nn.Parameter(torch.zeros(N, S, width))
            bias = np.zeros(E)
            for n in np.unique(plan.edge_dst):
                m = plan.edge_dst == n
                if np.all(plan.edge_val[m] > 0):
                    bias[m] = np.log(plan.edge_val[m])
            self.gate_bias = nn.Parameter(torch.as_tensor(bias, dtype=torch.float32))
        else:
            self.gate_query = self.gate_bias = None
        self._compile_levels()

    # -- bookkeeping ---------------------------------------------------------------------------------------------

    def _compile_levels(self) -> None:
        """Per depth level: where each incoming edge's source state lives, and the tied/untied layer groups."""
        plan, S = self.plan, self.plan.streams
        level_of = plan.depth
        pos = np.zeros(plan.n, dtype=np.int64)
        for nodes in plan.levels:
            pos[nodes] = np.arange(len(nodes))
        self._pos = pos
        self._device_cache: dict[tuple[int, str], torch.Tensor] = {}
        self._levels = []
        for lv, nodes in enumerate(plan.levels):
            info: dict[str, Any] = {"nodes": nodes, "P": len(nodes)}
            if lv > 0:
                eids = np.flatnonzero(np.isin(plan.edge_dst, nodes))
                eids = eids[np.argsort(level_of[plan.edge_src[eids]], kind="stable")]
                chunks = []
                for src_lv in np.unique(level_of[plan.edge_src[eids]]):
                    sel = eids[level_of[plan.edge_src[eids]] == src_lv]
                    chunks.append((int(src_lv), torch.as_tensor(pos[plan.edge_src[sel]])))
                info["eids"] = torch.as_tensor(eids)
                info["chunks"] = chunks
                info["dst_pos"] = torch.as_tensor(pos[plan.edge_dst[eids]])
                info["dst_node"] = torch.as_tensor(plan.edge_dst[eids])
            pairs = np.concatenate([np.arange(n * S, n * S + S) for n in nodes])
            layer = self.pair_layer[pairs]
            local = np.arange(len(pairs))
            info["identity"] = torch.as_tensor(local[layer < 0])
            if self.tied:
                info["groups"] = [(int(li), torch.as_tensor(local[layer == li]))
                                  for li in np.unique(layer[layer >= 0])]
            else:
                run = local[layer >= 0]
                info["groups"] = [(torch.as_tensor(layer[run]), torch.as_tensor(run))] if len(run) else []
            order = np.concatenate([info["identity"].numpy()] + [g[1].numpy() for g in info["groups"]])
            info["inverse"] = torch.as_tensor(np.argsort(order, kind="stable"))
            self._levels.append(info)

    def parameter_breakdown(self) -> dict[str, int]:
        """Parameters by part: ``layers`` (the blocks), ``stem``, ``head``, ``edges`` (static weights or gates)."""
        count = lambda mod: sum(p.numel() for p in mod.parameters()) if mod is not None else 0  # noqa: E731
        edges = sum(p.numel() for p in (self.edge_weight, self.gate_query, self.gate_bias) if p is not None)
        parts = {"layers": count(self.layers), "stem": count(self.stem), "head": count(self.head), "edges": edges}
        parts["total"] = sum(parts.values())
        return parts

    @property
    def applications(self) -> int:
        return self.plan.applications

    def _to(self, t: torch.Tensor) -> torch.Tensor:
        """An index tensor on the model's device, copied there once (not at every call) and then reused."""
        dev = self.adjacency_values.device
        if dev.type == "cpu":
            return t
        key = (id(t), str(dev))
        if key not in self._device_cache:
            self._device_cache[key] = t.to(dev)
        return self._device_cache[key]

    # -- edge weights --------------------------------------------------------------------------------------------

    def _static_weights(self, eids: torch.Tensor) -> torch.Tensor:
        w = self.edge_weight if self.edge_weights == "static" else self.adjacency_values
        return w.index_select(0, self._to(eids))

    def _gate_scores(self, src: torch.Tensor, dst_node: torch.Tensor, eids: torch.Tensor) -> torch.Tensor:
        """``q_dst . LN(h_src) / sqrt(S * width) + b_edge``; src ``(E, S, B, *, W)`` -> scores ``(E, B, *)``."""
        e, s = src.shape[0], src.shape[1]
        flat = F.layer_norm(src, (self.width,)).reshape(e, s, -1, self.width)
        q = self.gate_query.index_select(0, self._to(dst_node))
        scores = torch.einsum("esmw,esw->em", flat, q) / math.sqrt(s * self.width)
        scores = scores + self.gate_bias.index_select(0, self._to(eids))[:, None]
        return scores.reshape((e,) + src.shape[2:-1])

    # -- execution -----------------------------------------------------------------------------------------------

    def _run_layers(self, x: torch.Tensor, info: dict[str, Any], views: dict | None) -> torch.Tensor:
        """Apply each (node, stream) pair's layer to ``x`` of shape ``(P*S, B, *, W)`` (batched per level)."""
        outs = [x.index_select(0, self._to(info["identity"]))]
        for which, idx in info["groups"]:
            xs = x.index_select(0, self._to(idx))
            if self.tied:  # one call for all pairs running this layer: stack them along the batch dimension
                y = self.layers.apply(xs.reshape((1, -1) + xs.shape[2:]), which, views).reshape(xs.shape)
            else:
                y = self.layers.apply(xs, self._to(which))
            outs.append(y)
        return torch.cat(outs).index_select(0, self._to(info["inverse"]))

    def forward(self, x: torch.Tensor, return_edge_weights: bool = False):
        """Batched execution, one step per depth level. With ``return_edge_weights`` also return the weight of
        every edge (in :attr:`plan` edge order): ``(E,)`` for none/static, ``(E, B)`` or ``(E, B, T)`` for
        dynamic."""
        S = self.plan.streams
        emb = self.stem(x)
        views = self.layers.unbound() if (self.tied and self.layers is not None) else None
        states: list[torch.Tensor] = []
        gates: list[tuple[torch.Tensor, torch.Tensor]] = []
        for lv, info in enumerate(self._levels):
            P = info["P"]
            if lv == 0:
                inp = emb.unsqueeze(0).unsqueeze(0).expand((P, S) + emb.shape)
            else:
                src = torch.cat([states[src_lv].index_select(0, self._to(p)) for src_lv, p in info["chunks"]])
                dst_pos = self._to(info["dst_pos"])
                if self.edge_weights == "dynamic":
                    scores = self._gate_scores(src, info["dst_node"], info["eids"])
                    idx = dst_pos.reshape((-1,) + (1,) * (scores.dim() - 1)).expand_as(scores)
                    peak = torch.full((P,) + scores.shape[1:], -torch.inf, dtype=scores.dtype, device=scores.device)
                    peak = peak.scatter_reduce(0, idx, scores.detach(), "amax")
                    ex = torch.exp(scores - peak.index_select(0, dst_pos))
                    total = torch.zeros_like(peak).index_add(0, dst_pos, ex)
                    w = ex / total.index_select(0, dst_pos)
                    gates.append((info["eids"], w))
                    w = w.unsqueeze(1).unsqueeze(-1)  # (E, 1, B, *, 1)
                else:
                    w = self._static_weights(info["eids"]).to(src.dtype)
                    w = w.reshape((-1,) + (1,) * (src.dim() - 1))
                inp = torch.zeros((P,) + src.shape[1:], dtype=src.dtype, device=src.device)
                inp = inp.index_add(0, dst_pos, src * w)
            flat = inp.reshape((P * S,) + inp.shape[2:])
            states.append(self._run_layers(flat, info, views).reshape(inp.shape))
        out = states[int(self.plan.depth[-1])][int(self._pos[-1])]
        logits = self.head(self._combine(out))
        if not return_edge_weights:
            return logits
        return logits, self._assemble_weights(gates)

    def _combine(self, out: torch.Tensor) -> torch.Tensor:
        """``(S, B, *, W)`` -> ``(B, *, W)`` (mean over streams) or ``(B, *, S*W)`` (streams concatenated)."""
        if self.combine == "mean":
            return out.mean(0)
        return out.movedim(0, -2).flatten(-2)

    def _assemble_weights(self, gates: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        if self.edge_weights != "dynamic":
            return self._static_weights(torch.arange(self.plan.edges)).detach()
        if not gates:
            return torch.zeros(0)
        eids = torch.cat([g[0] for g in gates])
        w = torch.cat([g[1] for g in gates])
        return w.index_select(0, self._to(torch.argsort(eids)))

    def forward_reference(self, x: torch.Tensor, return_edge_weights: bool = False):
        """Node by node, stream by stream, edge by edge: slow and plain, to check :meth:`forward` against."""
        plan, S = self.plan, self.plan.streams
        emb = self.stem(x)
        states: list[list[torch.Tensor]] = []
        weights: dict[int, torch.Tensor] = {}
        for n in range(plan.n):
            eids = np.flatnonzero(plan.edge_dst == n)
            if len(eids) == 0:
                inp = [emb for _ in range(S)]
            else:
                if self.edge_weights == "dynamic":
                    scores = []
                    for e in eids:
                        j = int(plan.edge_src[e])
                        h = torch.stack(states[j])  # (S, B, *, W)
                        ln = F.layer_norm(h, (self.width,))
                        q = self.gate_query[n].reshape((S,) + (1,) * (h.dim() - 2) + (self.width,))
                        score = (ln * q).sum(dim=(0, -1)) / math.sqrt(S * self.width)
                        scores.append(score + self.gate_bias[e])
                    w = torch.softmax(torch.stack(scores), dim=0)
                    for i, e in enumerate(eids):
                        weights[int(e)] = w[i]
                    ws = [w[i].unsqueeze(-1) for i in range(len(eids))]
                else:
                    wt = self._static_weights(torch.as_tensor(eids))
                    ws = [wt[i] for i in range(len(eids))]
                    for i, e in enumerate(eids):
                        weights[int(e)] = wt[i]
                inp = []
                for s in range(S):
                    total = 0
                    for i, e in enumerate(eids):
                        total = total + states[int(plan.edge_src[e])][s] * ws[i]
                    inp.append(total)
            out = []
            for s in range(S):
                which = int(self.pair_layer[n * S + s])
                if which < 0:
                    out.append(inp[s])
                else:
                    out.append(self.layers.apply(inp[s].unsqueeze(0), which).squeeze(0))
            states.append(out)
        logits = self.head(self._combine(torch.stack(states[-1])))
        if not return_edge_weights:
            return logits
        if not weights:
            return logits, torch.zeros(0)
        return logits, torch.stack([weights[e] for e in range(plan.edges)]).detach()


# ---------------------------------------------------------------------------------------------------------------
# The training spec
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KronTrainSpec(SpecMixin):
    """Everything that defines one ``kron_train`` job: the graph, the network, the training and the baselines.

    ``graph`` is the graph page's own setup (:class:`engine.kronecker.KronSpec`: base matrix, names, power or a
    second graph), so the Train tab trains exactly the graph on screen; here it may have at most ``MAX_NODES``
    nodes. ``baselines`` picks what trains beside the Kronecker net (``tied`` decides whether that net is tied):
    ``"base"`` the base graph alone (same layers, fewer applications), ``"sequential"`` a plain stack as deep as
    the longest stream (one layer per application on it) with its width chosen to match the tied net's parameter
    count, and ``"untied"`` the untied Kronecker net (skipped when ``tied`` is False: the main net is already
    untied). The data of a task never depends on ``seed``; ``seed`` sets the initialisation and the batch order.
    """

    graph: KronSpec = dataclasses.field(default_factory=KronSpec)
    task: str = "digits"
    block: str = "mlp"
    tied: bool = True
    edge_weights: str = "none"
    combine: str = "mean"
    width: int = 32
    heads: int = 2
    epochs: int = 5
    lr: float = 3e-3
    batch_size: int = 64
    seed: int = 0
    baselines: tuple[str, ...] = BASELINES

    def __post_init__(self) -> None:
        if isinstance(self.graph, dict):
            object.__setattr__(self, "graph", KronSpec.from_dict(self.graph))
        if not isinstance(self.graph, KronSpec):
            raise ValueError(f"graph: must be an engine.kronecker.KronSpec, got {type(self.graph).__name__}")
        if isinstance(self.baselines, str):
            object.__setattr__(self, "baselines",
                               tuple(b.strip() for b in self.baselines.split(",") if b.strip()))
        object.__setattr__(self, "baselines", tuple(self.baselines))
        if self.graph.n_nodes > MAX_NODES:
            raise ValueError(f"graph: {self.graph.describe()} has {self.graph.n_nodes:,} nodes; at most "
                             f"{MAX_NODES:,} can be trained here (lower the power)")
        if self.task not in TASKS:
            raise ValueError(f"task: one of {sorted(TASKS)}, got {self.task!r}")
        if self.block not in BLOCKS:
            raise ValueError(f"block: one of {sorted(BLOCKS)}, got {self.block!r}")
        if not isinstance(self.tied, bool):
            raise ValueError(f"tied: must be True or False, got {self.tied!r}")
        if self.edge_weights not in EDGE_WEIGHTS:
            raise ValueError(f"edge_weights: one of {list(EDGE_WEIGHTS)}, got {self.edge_weights!r}")
        if self.combine not in COMBINES:
            raise ValueError(f"combine: one of {list(COMBINES)}, got {self.combine!r}")
        if not 4 <= self.width <= 1024:
            raise ValueError(f"width: must be in 4..1024, got {self.width}")
        if not 1 <= self.heads <= self.width or (self.block == "transformer" and self.width % self.heads):
            raise ValueError(f"heads: must be in 1..width and divide width ({self.width}), got {self.heads}")
        if not 1 <= self.epochs <= 1000:
            raise ValueError(f"epochs: must be in 1..1000, got {self.epochs}")
        if not (0.0 < self.lr <= 1.0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: must be in (0, 1], got {self.lr}")
        if not 1 <= self.batch_size <= 4096:
            raise ValueError(f"batch_size: must be in 1..4096, got {self.batch_size}")
        if not 0 <= self.seed < 2**31:
            raise ValueError(f"seed: must be in 0..2**31-1, got {self.seed}")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown or len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"baselines: distinct items of {list(BASELINES)}, got {list(self.baselines)}")

    def build_graph(self):
        """The Kronecker graph this spec trains on (a ``KronGraph``)."""
        return self.graph.build()

    def model_names(self) -> list[str]:
        """The models this spec trains, in order: the Kronecker net first, then the chosen baselines."""
        main = "kron_tied" if self.tied else "kron_untied"
        names = [main]
        for b in self.baselines:
            name = {"base": "base", "sequential": "sequential", "untied": "kron_untied"}[b]
            if name not in names:
                names.append(name)
        return names


# ---------------------------------------------------------------------------------------------------------------
# Building the models
# ---------------------------------------------------------------------------------------------------------------

MODEL_DESCRIPTIONS = {
    "kron_tied": "Kronecker net, tied: the base layers reused at every node and stream",
    "kron_untied": "Kronecker net, untied: one layer per node and stream",
    "base": "the base graph alone: the same layers, applied fewer times",
    "sequential": "plain sequential stack, as deep as one stream, width matched to the tied net's parameters",
}


def _net(spec: KronTrainSpec, graph: Any, **over: Any) -> KroneckerNet:
    task = TASKS[spec.task]
    kw = dict(seq_len=task.seq_len, features=task.features, n_classes=task.n_classes, per_token=task.per_token,
              block=spec.block, tied=spec.tied, edge_weights=spec.edge_weights, combine=spec.combine,
              width=spec.width, heads=spec.heads)
    kw.update(over)
    return KroneckerNet(graph, **kw)


def matched_width(spec: KronTrainSpec, depth: int, target: int) -> int:
    """The width of a ``depth``-layer plain stack whose parameter count is closest to ``target``.

    Widths step by ``heads`` for transformer blocks (attention needs heads | width). Parameters grow
    monotonically with width, so doubling brackets the crossing and a bisection finds it; the closer of its two
    neighbours wins.
    """
    step = spec.heads if spec.block == "transformer" else 1
    plan = GraphPlan.chain(depth)

    def params(k: int) -> int:
        return _net(spec, plan, tied=True, edge_weights="none", combine="mean",
                    width=k * step).parameter_breakdown()["total"]

    lo = 1
    if params(lo) >= target:
        return lo * step
    hi = 2
    while params(hi) < target:  # grow the bracket geometrically: never build a model far larger than needed
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if params(mid) < target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda k: abs(params(k) - target))
    return best * step


def build_models(spec: KronTrainSpec, device: str | torch.device | None = None) -> dict[str, KroneckerNet]:
    """Every model of ``spec`` (see :meth:`KronTrainSpec.model_names`), freshly initialised from ``spec.seed``.

    Each model is initialised under the same seed, so two runs of one spec start from the same weights (and a
    checkpoint can be loaded back into ``build_models(spec)[name]``).
    """
    dev = resolve_device(device)
    plan = GraphPlan.from_graph(spec.build_graph())
    models: dict[str, KroneckerNet] = {}
    for name in spec.model_names():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            if name == "kron_tied":
                m = _net(spec, plan, tied=True)
            elif name == "kron_untied":
                m = _net(spec, plan, tied=False)
            elif name == "base":
                m = _net(spec, spec.graph.base_graph(), tied=True)
            else:  # sequential
                with torch.random.fork_rng(devices=[]):
                    target = _net(spec, plan, tied=True).parameter_breakdown()["total"]
                    depth = max(int(plan.runs.sum(0).max()), 1)
                    width = matched_width(spec, depth, target)
                m = _net(spec, GraphPlan.chain(depth), tied=True, edge_weights="none", combine="mean",
                         width=width)
        models[name] = m.to(dev)
    return models


# ---------------------------------------------------------------------------------------------------------------
# Training and comparing
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class CompareResult:
    """What :func:`train_compare` returns: the table, the curves, the learned edge weights and the models."""

    table: list[dict[str, Any]]
    curves: dict[str, list[dict[str, Any]]]
    test_curves: dict[str, list[dict[str, Any]]]
    edge_weights: dict[str, dict[str, Any]]
    models: dict[str, KroneckerNet]
    task: str


TABLE_COLUMNS = ("model", "parameters", "layer_applications", "sequential_steps", "width", "test_accuracy",
                 "final_train_loss", "train_time_s", "description")


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(-1) == y).float().mean())


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate(model: KroneckerNet, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    """Accuracy over ``(x, y)``: fraction of examples, or of output tokens for per-token tasks."""
    model.eval()
    hits = total = 0
    for i in range(0, len(x), batch):
        pred = model(x[i:i + batch]).argmax(-1)
        hits += int((pred == y[i:i + batch]).sum())
        total += y[i:i + batch].numel()
    model.train()
    return hits / max(total, 1)


@torch.no_grad()
def learned_edge_weights(model: KroneckerNet, x: torch.Tensor, batch: int = 512) -> dict[str, Any]:
    """Each edge's weight as ``rows``/``cols``/``weights`` lists (to draw on the adjacency).

    none: the adjacency values; static: the learned scalars; dynamic: the gate's weight averaged over the
    examples (and tokens) of ``x``, with its standard deviation in ``std``.
    """
    plan = model.plan
    out = {"kind": model.edge_weights, "nodes": plan.n, "rows": plan.edge_dst.tolist(),
           "cols": plan.edge_src.tolist()}
    if model.edge_weights != "dynamic":
        out["weights"] = model._static_weights(torch.arange(plan.edges)).cpu().tolist()
        return out
    model.eval()
    parts = []
    for i in range(0, len(x), batch):
        _, w = model(x[i:i + batch], return_edge_weights=True)
        parts.append(w.reshape(plan.edges, -1))
    model.train()
    w = torch.cat(parts, dim=1) if parts else torch.zeros(plan.edges, 0)
    out["weights"] = w.mean(1).cpu().tolist()
    out["std"] = w.std(1).cpu().tolist() if w.shape[1] > 1 else [0.0] * plan.edges
    return out


SMALL_WIDTH = 128  # at or below this width, CPU training runs single-threaded (see train_compare)


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    """Temporarily set torch's intra-op thread count (``None``: leave it)."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train_compare(spec: KronTrainSpec, progress: Callable[..., Any] | None = None, cancel: Any = None,
                  device: str | torch.device | None = None) -> CompareResult:
    """Train the Kronecker net and the chosen baselines on ``spec.task``, one after the other, and compare them.

    Every model sees the same data in the same batch order (from ``spec.seed``) with Adam at ``spec.lr``
    (gradients clipped to norm 1). ``progress(fraction, info)`` gets ``{"model", "step", "epoch", "loss",
    "accuracy"}`` (train-batch values, for live curves; at most ~500 points per model) and, after each epoch,
    ``{"model", "step", "epoch", "test_accuracy"}``. Raises :class:`~engine.errors.Cancelled` when ``cancel``
    is set.

    On the CPU, nets of width <= ``SMALL_WIDTH`` train on one thread: their ops are a few thousand multiply-adds
    each, too small to split, and extra threads only spin-wait. On this 2-core machine, loaded by other work, a
    tied 9-node step took 24 ms on one thread and 432 ms on two.
    """
    dev = resolve_device(device)
    with _cpu_threads(1 if dev.type == "cpu" and spec.width <= SMALL_WIDTH else None):
        return _train_compare(spec, progress, cancel, dev)


def _train_compare(spec: KronTrainSpec, progress, cancel, dev: torch.device) -> CompareResult:
    task = TASKS[spec.task]
    data = task.loader()
    xtr, ytr, xte, yte = (t.to(dev) for t in (data.x_train, data.y_train, data.x_test, data.y_test))
    models = build_models(spec, dev)
    steps_per_epoch = math.ceil(len(xtr) / spec.batch_size)
    per_model = steps_per_epoch * spec.epochs
    total_steps = per_model * len(models)
    stride = max(1, per_model // 500)
    table, curves, test_curves, edges = [], {}, {}, {}
    done = 0
    for name, model in models.items():
        gen = torch.Generator().manual_seed(spec.seed)
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
        curve, tcurve = [], []
        step, t0, epoch_losses = 0, time.perf_counter(), []
        model.train()
        for epoch in range(1, spec.epochs + 1):
            order = torch.randperm(len(xtr), generator=gen).to(dev)
            epoch_losses = []
            for i in range(0, len(xtr), spec.batch_size):
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"kron_train cancelled while training {name}")
                idx = order[i:i + spec.batch_size]
                logits = model(xtr[idx])
                loss = _loss(logits, ytr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                step += 1
                done += 1
                point = {"model": name, "step": step, "epoch": epoch, "loss": float(loss.detach()),
                         "accuracy": _accuracy(logits.detach(), ytr[idx])}
                curve.append(point)
                epoch_losses.append(point["loss"])
                if progress is not None and (step % stride == 0 or step == per_model):
                    progress(done / total_steps, point)
            acc = evaluate(model, xte, yte)
            tpoint = {"model": name, "step": step, "epoch": epoch, "test_accuracy": acc}
            tcurve.append(tpoint)
            if progress is not None:
                progress(done / total_steps, tpoint)
        elapsed = time.perf_counter() - t0
        curves[name], test_curves[name] = curve, tcurve
        if name != "sequential":
            edges[name] = learned_edge_weights(model, xte)
        table.append({"model": name, "parameters": model.parameter_breakdown()["total"],
                      "layer_applications": model.applications,
                      "sequential_steps": model.plan.running_levels, "width": model.width,
                      "test_accuracy": tcurve[-1]["test_accuracy"],
                      "final_train_loss": float(np.mean(epoch_losses)), "train_time_s": round(elapsed, 3),
                      "description": MODEL_DESCRIPTIONS[name]})
    return CompareResult(table, curves, test_curves, edges, models, spec.task)


# ---------------------------------------------------------------------------------------------------------------
# Task function (job kind "kron_train") and CLI
# ---------------------------------------------------------------------------------------------------------------


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def run_to_dir(spec: KronTrainSpec, out_dir: pathlib.Path, progress=None, cancel=None, device=None) -> None:
    """Job kind ``kron_train``: train and compare, then write into ``out_dir``:

    ``results.csv`` (the table), ``curves.csv`` (per-step train loss/accuracy per model), ``summary.json``
    (table, curves, per-epoch test accuracy, learned edge weights per model, graph facts), ``spec.json`` and one
    checkpoint per model, ``checkpoint_<model>.safetensors`` (the ``state_dict``; load it into
    ``build_models(spec)[model]``).
    """
    from safetensors.torch import save_file

    out_dir = pathlib.Path(out_dir)
    result = train_compare(spec, progress=progress, cancel=cancel, device=device)
    plan = result.models[spec.model_names()[0]].plan
    rows = [p for name in result.curves for p in result.curves[name]]
    summary = {
        "task": spec.task, "metric": TASKS[spec.task].metric,
        "graph": {"nodes": plan.n, "edges": plan.edges, "streams": plan.streams,
                  "layer_applications": plan.applications, "layers": plan.layer_names,
                  "labels": ["".join(t) for t in plan.layers]},
        "table": result.table, "test_curves": result.test_curves, "edge_weights": result.edge_weights,
        "curves": result.curves,
        "checkpoints": {name: f"checkpoint_{name}.safetensors" for name in result.models},
    }
    for name, model in result.models.items():
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(tensors, str(out_dir / f"checkpoint_{name}.safetensors"),
                  metadata={"model": name, "config": json.dumps(model.config), "spec": spec.to_json()})
    (out_dir / "results.csv").write_text(_csv(result.table, TABLE_COLUMNS))
    (out_dir / "curves.csv").write_text(_csv(rows, ("model", "step", "epoch", "loss", "accuracy")))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    (out_dir / "spec.json").write_text(spec.to_json(indent=2))


def format_table(table: Sequence[dict[str, Any]]) -> str:
    """The comparison as a Markdown table (what the CLI prints)."""
    cols = ("model", "parameters", "layer_applications", "sequential_steps", "width", "test_accuracy",
            "train_time_s")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table:
        cells = [f"{row[c]:.4f}" if c == "test_accuracy" else f"{row[c]:.1f}" if c == "train_time_s"
                 else str(row[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    d = KronTrainSpec()
    p = argparse.ArgumentParser(prog="python -m engine.kronecker train",
                                description="Train a Kronecker network beside its baselines and print the table.")
    add_graph_arguments(p)
    p.add_argument("--task", default=d.task, choices=sorted(TASKS))
    p.add_argument("--block", default=None, choices=sorted(BLOCKS), help="default: the task's usual block")
    p.add_argument("--untied", action="store_true", help="train the untied net as the main model")
    p.add_argument("--edge-weights", default=d.edge_weights, choices=EDGE_WEIGHTS)
    p.add_argument("--combine", default=d.combine, choices=COMBINES)
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--heads", type=int, default=d.heads, help="attention heads (transformer blocks)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--baselines", default=",".join(d.baselines),
                   help='comma-separated subset of base,sequential,untied ("" for none)')
    p.add_argument("--out", default=None, help="write results.csv, summary.json, checkpoints here")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m engine.kronecker train --base ... --names abc --power 2 --task digits --epochs 5``
    (``python -m engine.kronecker_net ...`` works too, with or without the word ``train``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        argv = argv[1:]
    args = _parser().parse_args(argv)
    try:
        spec = KronTrainSpec(
            graph=spec_from_args(args), task=args.task, block=args.block or TASKS[args.task].default_block,
            tied=not args.untied, edge_weights=args.edge_weights, combine=args.combine, width=args.width,
            heads=args.heads, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
            baselines=args.baselines)
        resolve_device(args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def progress(fraction: float, info: dict | None = None) -> None:
        if info and "test_accuracy" in info:
            print(f"[{fraction:6.1%}] {info['model']:<12} epoch {info['epoch']:>3}  "
                  f"test accuracy {info['test_accuracy']:.4f}", file=sys.stderr, flush=True)

    import tempfile

    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        run_to_dir(spec, out, progress=progress, device=args.device)
        table = json.loads((out / "summary.json").read_text())["table"]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run_to_dir(spec, pathlib.Path(tmp), progress=progress, device=args.device)
            table = json.loads((pathlib.Path(tmp) / "summary.json").read_text())["table"]
    print(f"graph: {spec.graph.describe()}; task: {spec.task} ({TASKS[spec.task].metric}); block: {spec.block}; "
          f"tied: {spec.tied}; edge weights: "
          f"{spec.edge_weights}; combine: {spec.combine}; width {spec.width}; epochs {spec.epochs}; "
          f"seed {spec.seed}")
    print(format_table(table))
    if args.out:
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
