"""A Kronecker-grown layer graph as a PyTorch network, and the fair baselines it is compared with.

Can a shallower, more parallel net reusing a few layers through a self-similar graph learn as well as a deeper
plain one? The net runs the graph exactly (one state per stream, weighted row sums, a layer where the diagonal is
non-zero) and fast: nodes of one depth run together, each layer's parameters stacked so one batched call serves
many nodes; ``forward_reference`` computes node by node so tests can hold the batched path to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.device import resolve_device
from engine.kronecker.spec import BLOCK_KINDS, COMBINES, EDGE_WEIGHTS, KronTrainSpec
from engine.kronecker.tasks import TASKS

MLP_RATIO = 2  # hidden width of an MLP (and of a transformer block's MLP) = MLP_RATIO * width


# --- layer banks: M blocks with their parameters stacked, so one call can run many of them at once ---------------


def _uniform_(t: torch.Tensor, fan_in: int) -> torch.Tensor:
    """nn.Linear's default scale, applied to each stacked weight independently."""
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        return t.uniform_(-bound, bound)


class _Bank(nn.Module):
    """M blocks of one kind whose parameters are stacked along a leading dimension, so one call runs many.

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

    def _add_mlp(self, count: int, width: int) -> None:
        """The stacked MLP every block kind ends with: ``W2 gelu(W1 y + b1) + b2``, hidden width MLP_RATIO x."""
        hidden = MLP_RATIO * width
        self.w1 = nn.Parameter(_uniform_(torch.empty(count, width, hidden), width))
        self.b1 = nn.Parameter(torch.zeros(count, hidden))
        self.w2 = nn.Parameter(_uniform_(torch.empty(count, hidden, width), hidden))
        self.b2 = nn.Parameter(torch.zeros(count, width))


class MLPBank(_Bank):
    """Pre-norm residual MLP blocks: ``x + W2 gelu(W1 LN(x) + b1) + b2`` (states of shape ``(..., width)``)."""

    def __init__(self, count: int, width: int, heads: int = 1):
        super().__init__()
        self.width = width
        self.ln_w = nn.Parameter(torch.ones(count, width))
        self.ln_b = nn.Parameter(torch.zeros(count, width))
        self._add_mlp(count, width)

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
        self.width, self.heads = width, heads
        self.ln1_w = nn.Parameter(torch.ones(count, width))
        self.ln1_b = nn.Parameter(torch.zeros(count, width))
        self.wqkv = nn.Parameter(_uniform_(torch.empty(count, width, 3 * width), width))
        self.bqkv = nn.Parameter(torch.zeros(count, 3 * width))
        self.wo = nn.Parameter(_uniform_(torch.empty(count, width, width), width))
        self.bo = nn.Parameter(torch.zeros(count, width))
        self.ln2_w = nn.Parameter(torch.ones(count, width))
        self.ln2_b = nn.Parameter(torch.zeros(count, width))
        self._add_mlp(count, width)

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
assert tuple(BLOCKS) == BLOCK_KINDS, "the spec's block choices and the banks must name the same blocks"
# MLP blocks see one state vector per example; transformer blocks one state per token.
TOKEN_STATES = {"mlp": False, "transformer": True}


def block_parameters(block: str, width: int, heads: int = 2) -> int:
    """Parameters of one block of this kind and width (what every tied base layer costs)."""
    return BLOCKS[block](1, width, heads).per_block_parameters()


# --- the graph, compiled into index tensors for batched execution ------------------------------------------------


@dataclass
class GraphPlan:
    """A layer graph compiled for execution: ``layers[n][s]`` names node n's layer on stream s, ``runs[n, s]``
    whether it applies it (else it passes its summed input on); edges below the diagonal in (row, column) order.
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


# --- the network -------------------------------------------------------------------------------------------------


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
    """A network whose dataflow is a layer graph (``S`` streams: one state per stream at every node).

    Source nodes read the embedded input; any other node sums its row's states weighted by the adjacency
    (``edge_weights="none"``), by learned scalars starting there (``"static"``), or by a gate (``"dynamic"``):
    ``softmax_j(q_n . LN(h_j) / sqrt(S * width) + b_nj)`` over node ``n``'s inputs ``j``, per example (and
    token), ``b`` starting at ``log A`` when a row is positive, so the gate starts at the adjacency's
    proportions. A non-zero diagonal applies the node's layer per stream (``x`` of ``xy`` on stream 1, ``y`` on
    stream 2). Tied: one layer per name, reused everywhere; untied: one per (node, stream). The last node's
    streams are combined (``mean`` or ``concat``) into the head. ``graph``: a ``KronGraph`` or a GraphPlan.
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


# --- building the models -----------------------------------------------------------------------------------------

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
