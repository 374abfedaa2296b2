"""FractalNet (Larsson, Maire & Shakhnarovich, ICLR 2017), built exactly as the paper draws it.

Why this module exists: public ports get the details subtly wrong (a different "global" column per join,
dropped paths computed anyway and masked afterwards, joins of joins instead of one C-way join), and those
details are the paper's claims. Here:

* **Expansion rule.** ``f_1(z) = conv(z)`` and ``f_{C+1}(z) = join(f_C(f_C(z)), conv(z))`` with
  ``conv`` = 3x3 Conv-BN-ReLU (+ optional dropout). Consecutive joins merge, as in the paper's Figure 1: the
  join that ends a block takes C inputs, one per column. Unrolled, a block with C columns is a grid of
  ``2^(C-1)`` depth positions; column ``c`` (0 = shallowest) holds ``2^c`` convs, one every
  ``2^(C-1-c)`` positions, so a block has ``2^C - 1`` convs and its deepest path ``2^(C-1)`` of them. At a
  position where more than one column ends a conv, their outputs are joined, and the join's output feeds the
  next conv of every column that took part.
* **Blocks.** ``B`` blocks; in each, every column's output is 2x2 max-pooled and *then* joined (as the authors'
  code does). A head (global average pooling, optional dropout, linear) follows unless ``include_top=False``.
* **Join.** ``"mean"`` (the paper: element-wise mean of the active inputs) or ``"learned"`` (a softmax over one
  learned logit per join input, renormalised over the active inputs; equal logits give the paper's mean).
* **Drop-path**, sampled once per mini-batch: *local* (each join input dropped with probability
  ``local_drop``, at least one kept) or *global* (one column kept for the whole network, the same column in
  every block), chosen with probability ``global_ratio``. Dropped paths are **not computed**: the block works
  out which convs the sampled subnetwork needs and runs only those. Inference uses every path.
* ``model(x, column=k)`` runs column ``k`` alone (0 = shallowest; ``-1`` = deepest, as in Python; in a block
  with fewer columns, the deepest that block has).
* **Batch-norm statistics per configuration** (:class:`FractalBatchNorm2d`, :func:`calibrate_batch_norm`): the
  full net and each column alone normalise with their own population statistics, because a conv after a join
  sees different inputs in each. Training is unchanged (batch statistics); only inference statistics differ.

Named variants (``create_model(name, num_classes=..., in_channels=...)``; ``variant_table()`` returns this as
data, with parameter counts, for the page):

================  =======  ======  ==========================  =============  ===================================
name              columns  blocks  filters per block            deepest depth  meant for
================  =======  ======  ==========================  =============  ===================================
micro             2        2       16, 32                       4              tests and smoke runs (>= 4x4 input)
small             3        3       32, 64, 96                   12             8x8 digits and 32x32 images alike
medium            3        4       64, 128, 256, 256            16             32x32 images (CIFAR) on a CPU
large             4        4       64, 128, 256, 512            32             32x32 images on a GPU
paper-cifar-20    3        5       64, 128, 256, 512, 512       20             the paper's CIFAR FractalNet-20
paper-cifar-40    4        5       64, 128, 256, 512, 512       40             the paper's CIFAR FractalNet-40
================  =======  ======  ==========================  =============  ===================================

The paper variants use its drop-path (local 0.15, global 50%) and its per-block dropout 0, 0.1, 0.2, 0.3, 0.4.

CLI: ``python -m engine.fractalnet train --variant small --dataset digits --epochs 10 --out DIR``, and
``evaluate`` / ``predict`` on a checkpoint directory (see ``python -m engine.fractalnet -h``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.specs import SpecMixin

JOINS: dict[str, str] = {
    "mean": "element-wise mean of the active inputs (the paper)",
    "learned": "softmax over learned per-input logits, renormalised over the active inputs",
}

MAX_COLUMNS = 6  # 63 convs per block; beyond this the block is a research question of its own


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class FractalNetConfig(SpecMixin):
    """Everything that defines a FractalNet; round-trips through JSON and is stored beside every checkpoint.

    ``columns`` is one C for every block, or a tuple with one C per block. ``dropout`` is one rate for every
    conv, or one per block (the paper raises it by 0.1 per block).
    """

    columns: int | tuple[int, ...] = 3
    filters: tuple[int, ...] = (32, 64, 96)
    join: str = "mean"
    drop_path: bool = True
    local_drop: float = 0.15
    global_ratio: float = 0.5
    dropout: float | tuple[float, ...] = 0.0
    head_dropout: float = 0.0
    num_classes: int = 10
    in_channels: int = 3

    def __post_init__(self) -> None:
        # JSON gives lists back; normalise so a round trip compares equal.
        for name in ("columns", "filters", "dropout"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        if not isinstance(self.filters, tuple) or not self.filters:
            raise ValueError("filters: need one filter count (>= 1) per block, at least one block")
        if any(not isinstance(f, int) or isinstance(f, bool) or f < 1 for f in self.filters):
            raise ValueError(f"filters: every filter count must be an integer >= 1, got {self.filters}")
        cols = self.columns if isinstance(self.columns, tuple) else (self.columns,)
        if isinstance(self.columns, tuple) and len(self.columns) != len(self.filters):
            raise ValueError(
                f"columns: a per-block tuple needs one entry per block ({len(self.filters)}), got {self.columns}"
            )
        if any(not isinstance(c, int) or isinstance(c, bool) or not 1 <= c <= MAX_COLUMNS for c in cols):
            raise ValueError(f"columns: must be integers in 1..{MAX_COLUMNS}, got {self.columns}")
        if self.join not in JOINS:
            raise ValueError(f"join: must be one of {sorted(JOINS)}, got {self.join!r}")
        if not 0.0 <= self.local_drop < 1.0:
            raise ValueError(f"local_drop: must be in [0, 1), got {self.local_drop}")
        if not 0.0 <= self.global_ratio <= 1.0:
            raise ValueError(f"global_ratio: must be in [0, 1], got {self.global_ratio}")
        drops = self.dropout if isinstance(self.dropout, tuple) else (self.dropout,)
        if isinstance(self.dropout, tuple) and len(self.dropout) != len(self.filters):
            raise ValueError(
                f"dropout: a per-block tuple needs one entry per block ({len(self.filters)}), got {self.dropout}"
            )
        if any(not 0.0 <= float(d) < 1.0 for d in drops):
            raise ValueError(f"dropout: rates must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"head_dropout: must be in [0, 1), got {self.head_dropout}")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes: must be an integer >= 1, got {self.num_classes}")
        if not isinstance(self.in_channels, int) or self.in_channels < 1:
            raise ValueError(f"in_channels: must be an integer >= 1, got {self.in_channels}")

    def __hash__(self) -> int:
        return hash(self.to_json())

    @property
    def blocks(self) -> int:
        return len(self.filters)

    @property
    def block_columns(self) -> tuple[int, ...]:
        """C of every block."""
        return self.columns if isinstance(self.columns, tuple) else (self.columns,) * self.blocks

    @property
    def block_dropout(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self.dropout) if isinstance(self.dropout, tuple) else (
            (float(self.dropout),) * self.blocks
        )

    @property
    def max_columns(self) -> int:
        """The number of columns of the network: the most any block has."""
        return max(self.block_columns)

    @property
    def min_input_size(self) -> int:
        """Smallest height/width that survives the ``B`` 2x2 max-poolings."""
        return 2**self.blocks


# --------------------------------------------------------------------------------------------------------------
# The block's layout: which conv sits where, which joins take what. Pure data, shared by the module (to run it)
# and by the page (to draw it), so the diagram can never disagree with the network.
# --------------------------------------------------------------------------------------------------------------


def _period(columns: int, column: int) -> int:
    """Column ``column`` holds a conv every ``2^(C-1-column)`` depth positions."""
    return 2 ** (columns - 1 - column)


def _ending_columns(columns: int, position: int) -> tuple[int, ...]:
    """Columns whose conv ends at depth ``position`` (1-based): a suffix ``(C-1-v, ..., C-1)``, v = 2-adic order."""
    return tuple(c for c in range(columns) if position % _period(columns, c) == 0)


@dataclass(frozen=True)
class _Layout:
    columns: int
    depth: int  # 2^(C-1) positions
    # join position -> columns joined there (positions where >= 2 columns end, plus the last position always)
    joins: dict[int, tuple[int, ...]]

    @staticmethod
    def of(columns: int) -> "_Layout":
        depth = 2 ** (columns - 1)
        joins = {}
        for d in range(1, depth + 1):
            ending = _ending_columns(columns, d)
            if len(ending) >= 2 or d == depth:
                joins[d] = ending
        return _Layout(columns, depth, joins)

    def input_of(self, column: int, position: int) -> int:
        """Position whose result feeds the conv of ``column`` ending at ``position`` (0 = the block input)."""
        return position - _period(self.columns, column)


def block_structure(config: FractalNetConfig, block: int) -> dict:
    """The layout of block ``block`` as plain data, for drawing a diagram from the model itself.

    Returns ``{"block", "columns", "depth", "in_channels", "out_channels", "dropout", "convs", "joins", "pool",
    "conv_count", "deepest_path"}``. Each conv is ``{"id", "column", "index", "position", "input"}`` where
    ``input`` is ``"input"``, another conv's id, or a join's id; each join is ``{"id", "position", "inputs"
    (conv ids, one per column), "columns", "last", "pooled"}``. Positions run 1..depth from the block input.
    """
    if not 0 <= block < config.blocks:
        raise ValueError(f"block: must be in 0..{config.blocks - 1}, got {block}")
    C = config.block_columns[block]
    layout = _Layout.of(C)
    convs = []
    for c in range(C):
        for k in range(2**c):
            pos = (k + 1) * _period(C, c)
            src = layout.input_of(c, pos)
            if src == 0:
                inp = "input"
            elif src in layout.joins:
                inp = f"join{src}"
            else:
                inp = f"c{c}.{k - 1}"
            convs.append({"id": f"c{c}.{k}", "column": c, "index": k, "position": pos, "input": inp})
    joins = []
    for pos, cols in layout.joins.items():
        last = pos == layout.depth
        joins.append(
            {
                "id": f"join{pos}",
                "position": pos,
                "columns": list(cols),
                "inputs": [f"c{c}.{pos // _period(C, c) - 1}" for c in cols],
                "last": last,
                "pooled": last,
            }
        )
    return {
        "block": block,
        "columns": C,
        "depth": layout.depth,
        "in_channels": config.in_channels if block == 0 else config.filters[block - 1],
        "out_channels": config.filters[block],
        "dropout": config.block_dropout[block],
        "convs": convs,
        "joins": joins,
        "pool": {"kind": "max", "size": 2, "where": "on every column's output, before the block's last join"},
        "conv_count": len(convs),
        "deepest_path": layout.depth,
    }


# --------------------------------------------------------------------------------------------------------------
# Drop-path samples
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DropPathSample:
    """One mini-batch's subnetwork: for every block, for every join position, the columns kept there.

    ``mode`` is ``"local"``, ``"global"`` (then ``column`` is the network-wide column) or ``"all"``.
    """

    mode: str
    column: int | None
    active: tuple[dict[int, tuple[int, ...]], ...]


def _column_in_block(column: int, block_columns: int) -> int:
    """A network column inside a block with fewer columns is that block's deepest."""
    return min(column, block_columns - 1)


# --------------------------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------------------------


class FractalBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose population statistics are kept per evaluation configuration.

    Why: a conv after a join sees the mean of several columns in the full net but a single column's output
    when that column runs alone, so one set of running averages (and, under drop-path, one dominated by the
    last few mixed-mode mini-batches) fits neither. Measured on digits (``small``, 10 epochs): with shared
    statistics the deepest column alone scored 57% and the full net 93%; the same weights with statistics
    re-estimated per configuration scored 91% and 97%. The training computation is the paper's (batch
    statistics); only the statistics used at inference are kept per configuration: ``slot = None`` for the
    full net (the usual ``running_mean``/``running_var``) and ``slot = k`` for column k alone (rows of
    ``column_running_mean``/``column_running_var``, updated by global drop-path batches of column k and by
    :func:`calibrate_batch_norm`).
    """

    def __init__(self, num_features: int, columns: int):
        super().__init__(num_features)
        self.register_buffer("column_running_mean", torch.zeros(columns, num_features))
        self.register_buffer("column_running_var", torch.ones(columns, num_features))
        self.slot: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.slot is None:
            return super().forward(x)
        k = self.slot
        return F.batch_norm(
            x, self.column_running_mean[k], self.column_running_var[k], self.weight, self.bias,
            self.training, 0.1 if self.momentum is None else self.momentum, self.eps,
        )

    def reset_slot(self, slot: int | None) -> None:
        if slot is None:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
        else:
            self.column_running_mean[slot].zero_()
            self.column_running_var[slot].fill_(1.0)


class ConvBNReLU(nn.Sequential):
    """The paper's unit: 3x3 convolution, batch norm, ReLU, then dropout when asked."""

    def __init__(self, cin: int, cout: int, dropout: float = 0.0, stat_slots: int = 1):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            FractalBatchNorm2d(cout, stat_slots),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class FractalBlock(nn.Module):
    """One fractal block with merged joins; ``forward`` runs only the convs the kept paths need."""

    def __init__(
        self, cin: int, cout: int, columns: int, join: str = "mean", dropout: float = 0.0,
        stat_slots: int | None = None,
    ):
        super().__init__()
        slots = columns if stat_slots is None else stat_slots
        self.num_columns = columns
        self.layout = _Layout.of(columns)
        self.join_kind = join
        self.paths = nn.ModuleList(
            nn.ModuleList(ConvBNReLU(cin if k == 0 else cout, cout, dropout, slots) for k in range(2**c))
            for c in range(columns)
        )
        if join == "learned":
            # One logit per input of every join; zeros = the paper's mean at initialisation.
            self.join_logits = nn.ParameterDict(
                {str(pos): nn.Parameter(torch.zeros(len(cols))) for pos, cols in self.layout.joins.items()}
            )
        else:
            self.join_logits = None

    def all_active(self) -> dict[int, tuple[int, ...]]:
        return dict(self.layout.joins)

    def column_active(self, column: int) -> dict[int, tuple[int, ...]]:
        c = _column_in_block(column, self.num_columns)
        return {pos: ((c,) if c in cols else cols) for pos, cols in self.layout.joins.items()}

    def needed(self, active: dict[int, tuple[int, ...]]) -> tuple[set[tuple[int, int]], set[int]]:
        """Convs ``(column, position)`` and joins (positions) the block's output depends on, given ``active``.

        Walks the positions from the block's last join back to its input: a needed join needs the convs of
        its kept inputs; a needed conv needs whatever feeds it. Everything else is never run.
        """
        layout = self.layout
        need_convs: set[tuple[int, int]] = set()
        need_joins = {layout.depth}
        for d in range(layout.depth, 0, -1):
            if d in need_joins:
                for c in active[d]:
                    need_convs.add((c, d))
            for c in _ending_columns(layout.columns, d):
                if (c, d) not in need_convs:
                    continue
                src = layout.input_of(c, d)
                if src == 0:
                    continue
                if src in layout.joins:
                    need_joins.add(src)
                else:
                    need_convs.add((c, src))
        return need_convs, need_joins

    def join(self, position: int, inputs: list[torch.Tensor], columns: tuple[int, ...]) -> torch.Tensor:
        if len(inputs) == 1:
            return inputs[0]
        if self.join_logits is None:
            out = inputs[0]
            for t in inputs[1:]:
                out = out + t
            return out / len(inputs)
        all_cols = self.layout.joins[position]
        logits = self.join_logits[str(position)]
        idx = [all_cols.index(c) for c in columns]
        w = torch.softmax(logits[idx], dim=0).to(inputs[0].dtype)
        out = inputs[0] * w[0]
        for i, t in enumerate(inputs[1:], start=1):
            out = out + t * w[i]
        return out

    def forward(self, x: torch.Tensor, active: dict[int, tuple[int, ...]] | None = None) -> torch.Tensor:
        layout = self.layout
        active = self.all_active() if active is None else active
        need_convs, need_joins = self.needed(active)
        conv_out: dict[tuple[int, int], torch.Tensor] = {}
        join_out: dict[int, torch.Tensor] = {0: x}
        for d in range(1, layout.depth + 1):
            for c in _ending_columns(layout.columns, d):
                if (c, d) not in need_convs:
                    continue
                src = layout.input_of(c, d)
                inp = join_out[src] if (src == 0 or src in layout.joins) else conv_out[(c, src)]
                conv_out[(c, d)] = self.paths[c][d // _period(layout.columns, c) - 1](inp)
            if d in need_joins:
                cols = active[d]
                ins = [conv_out[(c, d)] for c in cols]
                if d == layout.depth:
                    ins = [F.max_pool2d(t, 2) for t in ins]
                join_out[d] = self.join(d, ins, cols)
        return join_out[layout.depth]


class FractalNet(nn.Module):
    """B fractal blocks, then global average pooling, optional dropout and a linear classifier.

    Inputs are images in [0, 1]; the per-channel normalisation (``input_mean``, ``input_std`` buffers, set by
    the trainer from the training data) lives in the model so a checkpoint predicts on raw images.
    """

    def __init__(self, config: FractalNetConfig, include_top: bool = True):
        super().__init__()
        self.config = config
        self.include_top = include_top
        self.register_buffer("input_mean", torch.zeros(config.in_channels))
        self.register_buffer("input_std", torch.ones(config.in_channels))
        blocks = []
        cin = config.in_channels
        for b, (cout, C, p) in enumerate(zip(config.filters, config.block_columns, config.block_dropout)):
            blocks.append(FractalBlock(cin, cout, C, config.join, p, config.max_columns))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        if include_top:
            self.head_dropout = nn.Dropout(config.head_dropout) if config.head_dropout > 0 else nn.Identity()
            self.fc = nn.Linear(cin, config.num_classes)
        self.last_sample: DropPathSample | None = None
        self._batch_norms = [m for m in self.modules() if isinstance(m, FractalBatchNorm2d)]
        self._slot: int | None = None

    def batch_norms(self) -> list[FractalBatchNorm2d]:
        return list(self._batch_norms)

    def _use_slot(self, slot: int | None) -> None:
        """Point every batch norm at the statistics of one configuration (None = full net, k = column k)."""
        if slot != self._slot:
            for bn in self._batch_norms:
                bn.slot = slot
            self._slot = slot

    @property
    def num_columns(self) -> int:
        return self.config.max_columns

    def normalize_column(self, column: int) -> int:
        n = self.num_columns
        if not isinstance(column, int) or isinstance(column, bool) or not -n <= column < n:
            raise ValueError(f"column: must be an integer in {-n}..{n - 1}, got {column!r}")
        return column % n

    # ---- drop-path sampling ---------------------------------------------------------------------------------
    def sample_drop_path(self, generator: torch.Generator | None = None) -> DropPathSample:
        """Draw one mini-batch's subnetwork (global with probability ``global_ratio``, else local)."""
        cfg = self.config

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator)

        if float(rand(1)) < cfg.global_ratio:
            k = int(torch.randint(self.num_columns, (1,), generator=generator))
            return DropPathSample("global", k, tuple(b.column_active(k) for b in self.blocks))
        active = []
        for b in self.blocks:
            per_join = {}
            for pos, cols in b.layout.joins.items():
                keep = rand(len(cols)) >= cfg.local_drop
                if not bool(keep.any()):
                    keep[int(torch.randint(len(cols), (1,), generator=generator))] = True
                per_join[pos] = tuple(c for c, k in zip(cols, keep.tolist()) if k)
            active.append(per_join)
        return DropPathSample("local", None, tuple(active))

    # ---- forward ------------------------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        cfg = self.config
        if x.dim() != 4:
            raise ValueError(f"input: expected a batch (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != cfg.in_channels:
            raise ValueError(f"input: the model takes {cfg.in_channels} channel(s), got {x.shape[1]}")
        h, w = x.shape[-2:]
        if min(h, w) < cfg.min_input_size:
            raise ValueError(
                f"input: {h}x{w} images are too small for {cfg.blocks} blocks of 2x2 max-pooling; "
                f"need at least {cfg.min_input_size}x{cfg.min_input_size} (or use fewer blocks)"
            )

    def features(
        self, x: torch.Tensor, column: int | None = None, drop: DropPathSample | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The last feature map (what ``include_top=False`` returns)."""
        self.check_input(x)
        x = (x - self.input_mean.view(1, -1, 1, 1).to(x.dtype)) / self.input_std.view(1, -1, 1, 1).to(x.dtype)
        if column is not None:
            k = self.normalize_column(column)
            drop = DropPathSample("global", k, tuple(b.column_active(k) for b in self.blocks))
        elif drop is None:
            if self.training and self.config.drop_path:
                drop = self.sample_drop_path(generator)
            else:
                drop = DropPathSample("all", None, tuple(b.all_active() for b in self.blocks))
        self.last_sample = drop
        self._use_slot(drop.column if drop.mode == "global" else None)
        for block, active in zip(self.blocks, drop.active):
            x = block(x, active)
        return x

    def forward(
        self, x: torch.Tensor, column: int | None = None, drop: DropPathSample | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Logits (or the feature map without a top).

        ``column=k`` runs column k alone; ``drop`` forces a given subnetwork; otherwise a training-mode model
        with drop-path on samples one subnetwork per call (per mini-batch) from ``generator``, and an
        evaluation-mode model uses every path.
        """
        x = self.features(x, column=column, drop=drop, generator=generator)
        if not self.include_top:
            return x
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.head_dropout(x))

    # ---- introspection --------------------------------------------------------------------------------------
    def join_weights(self) -> list[list[dict]]:
        """Per block, per join: the columns joined and the weight each gets with every path active."""
        out = []
        for block in self.blocks:
            rows = []
            for pos, cols in block.layout.joins.items():
                if len(cols) < 2:
                    continue
                if block.join_logits is None:
                    w = [1.0 / len(cols)] * len(cols)
                else:
                    w = torch.softmax(block.join_logits[str(pos)].detach().float().cpu(), 0).tolist()
                rows.append({"position": pos, "columns": list(cols), "weights": w})
            out.append(rows)
        return out


# --------------------------------------------------------------------------------------------------------------
# Per-column facts
# --------------------------------------------------------------------------------------------------------------


def column_depths(config: FractalNetConfig) -> list[int]:
    """Number of conv layers on column k's path through the whole network, k = 0 (shallowest) .. deepest."""
    return [
        sum(2 ** _column_in_block(k, C) for C in config.block_columns) for k in range(config.max_columns)
    ]


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_count(config: FractalNetConfig) -> int:
    """Trainable parameters of the whole network (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        return _count(FractalNet(config))


def column_parameter_counts(config: FractalNetConfig) -> list[int]:
    """Parameters column k alone uses (its convs in every block, plus the head), k = 0 .. deepest."""
    with torch.device("meta"):
        model = FractalNet(config)
    head = _count(model.fc)
    counts = []
    for k in range(config.max_columns):
        n = head
        for block in model.blocks:
            n += _count(block.paths[_column_in_block(k, block.num_columns)])
        counts.append(n)
    return counts


def _conv_macs(config: FractalNetConfig, image_size: tuple[int, int]) -> list[dict[tuple[int, int], int]]:
    """Multiply-accumulates of every conv, per block, keyed like ``FractalBlock.needed``: (column, position)."""
    h, w = image_size
    out = []
    cin = config.in_channels
    for b, (cout, C) in enumerate(zip(config.filters, config.block_columns)):
        hw = (h // 2**b) * (w // 2**b)
        macs = {}
        for c in range(C):
            for k in range(2**c):
                macs[(c, (k + 1) * _period(C, c))] = hw * 9 * (cin if k == 0 else cout) * cout
        out.append(macs)
        cin = cout
    return out


def forward_flops(config: FractalNetConfig, image_size: tuple[int, int], column: int | None = None) -> int:
    """FLOPs (2 x multiply-accumulates of the convs and the classifier) of one image's forward pass, full net
    or ``column`` alone. Batch norm, ReLU, pooling and joins are left out (a few percent)."""
    per_block = _conv_macs(config, image_size)
    total = config.filters[-1] * config.num_classes
    for macs, C in zip(per_block, config.block_columns):
        if column is None:
            total += sum(macs.values())
        else:
            k = _column_in_block(column % config.max_columns, C)
            total += sum(v for (c, _), v in macs.items() if c == k)
    return 2 * total


def expected_train_flops(config: FractalNetConfig, image_size: tuple[int, int], samples: int = 256) -> float:
    """Expected FLOPs of one training image (forward + backward ~ 3 x forward) under drop-path, where dropped
    paths are not computed: averaged over ``samples`` subnetworks drawn with a fixed seed."""
    if not config.drop_path:
        return 3.0 * forward_flops(config, image_size)
    with torch.device("meta"):
        model = FractalNet(config)
    per_block = _conv_macs(config, image_size)
    g = torch.Generator().manual_seed(0)
    total = 0
    for _ in range(samples):
        sample = model.sample_drop_path(g)
        for block, active, macs in zip(model.blocks, sample.active, per_block):
            need, _ = block.needed(active)
            total += sum(macs[key] for key in need)
    head = config.filters[-1] * config.num_classes
    return 3.0 * 2 * (total / samples + head)


@torch.no_grad()
def calibrate_batch_norm(
    model: FractalNet, images: torch.Tensor, batch_size: int = 256, columns: bool = True
) -> None:
    """Re-estimate batch-norm population statistics ("precise BN") on ``images`` (in [0, 1]) for the full net
    and, with ``columns``, for each column alone, each in exactly the configuration it is evaluated in.

    Statistics are the average over batches of the batch statistics (dropout off). Weights are untouched.
    """
    was_training = model.training
    dev = next(model.parameters()).device
    bns = model.batch_norms()
    momenta = [bn.momentum for bn in bns]
    tracked = [bn.num_batches_tracked.clone() for bn in bns]  # a counter of training batches: leave it be
    model.eval()
    try:
        for slot in [None, *(range(model.num_columns) if columns else [])]:
            for bn in bns:
                bn.reset_slot(slot)
                bn.train()
            for i, start in enumerate(range(0, len(images), batch_size)):
                for bn in bns:
                    bn.momentum = 1.0 / (i + 1)  # a running average of the batches seen so far
                model(images[start:start + batch_size].to(dev), column=slot)
            for bn in bns:
                bn.eval()
    finally:
        for bn, m, t in zip(bns, momenta, tracked):
            bn.momentum = m
            bn.num_batches_tracked.copy_(t)
        model.train(was_training)


# --------------------------------------------------------------------------------------------------------------
# Registry of named variants
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    make: Callable[..., FractalNetConfig]


_PAPER_DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant("micro", "C=2, B=2: tests and smoke runs",
                lambda **kw: FractalNetConfig(**{"columns": 2, "filters": (16, 32), **kw})),
        Variant("small", "C=3, B=3: 8x8 digits and 32x32 images alike",
                lambda **kw: FractalNetConfig(**{"columns": 3, "filters": (32, 64, 96), **kw})),
        Variant("medium", "C=3, B=4: 32x32 images (CIFAR) on a CPU",
                lambda **kw: FractalNetConfig(**{"columns": 3, "filters": (64, 128, 256, 256), **kw})),
        Variant("large", "C=4, B=4: 32x32 images on a GPU",
                lambda **kw: FractalNetConfig(**{"columns": 4, "filters": (64, 128, 256, 512), **kw})),
        Variant("paper-cifar-20", "the paper's CIFAR FractalNet, 20 layers (C=3, B=5)",
                lambda **kw: FractalNetConfig(
                    **{"columns": 3, "filters": (64, 128, 256, 512, 512), "dropout": _PAPER_DROPOUT, **kw})),
        Variant("paper-cifar-40", "the paper's CIFAR FractalNet, 40 layers (C=4, B=5)",
                lambda **kw: FractalNetConfig(
                    **{"columns": 4, "filters": (64, 128, 256, 512, 512), "dropout": _PAPER_DROPOUT, **kw})),
    ]
}


def variant_config(name: str, num_classes: int = 10, in_channels: int = 3, **overrides: Any) -> FractalNetConfig:
    """The config of a named variant, with the dataset's classes/channels and any field overridden."""
    if name not in VARIANTS:
        raise ValueError(f"variant: must be one of {list(VARIANTS)}, got {name!r}")
    return VARIANTS[name].make(num_classes=num_classes, in_channels=in_channels, **overrides)


def create_model(
    name: str, num_classes: int = 10, in_channels: int = 3, include_top: bool = True, **overrides: Any
) -> FractalNet:
    """timm-style factory: ``create_model("small", num_classes=10, in_channels=1)``."""
    return FractalNet(variant_config(name, num_classes, in_channels, **overrides), include_top=include_top)


def match_variant(config: FractalNetConfig) -> str | None:
    """The registry name whose architecture (columns, filters, join, drop-path, dropout) equals ``config``."""
    for name in VARIANTS:
        ref = variant_config(name, config.num_classes, config.in_channels)
        if ref == config:
            return name
    return None


def variant_table(num_classes: int = 10, in_channels: int = 3) -> list[dict]:
    """The registry as rows (name, columns, blocks, filters, deepest depth, parameters, min input, description)."""
    rows = []
    for name, v in VARIANTS.items():
        cfg = variant_config(name, num_classes, in_channels)
        rows.append(
            {
                "name": name,
                "columns": cfg.max_columns,
                "blocks": cfg.blocks,
                "filters": list(cfg.filters),
                "deepest_depth": column_depths(cfg)[-1],
                "parameters": parameter_count(cfg),
                "min_input": cfg.min_input_size,
                "description": v.description,
            }
        )
    return rows


def describe(config: FractalNetConfig, image_size: tuple[int, int] | None = None) -> dict:
    """Per-column depth and parameters plus totals (and FLOPs, given an image size): what the page shows
    beside the block diagram and uses for its cost estimate."""
    out = {
        "columns": config.max_columns,
        "blocks": config.blocks,
        "column_depths": column_depths(config),
        "column_parameters": column_parameter_counts(config),
        "parameters": parameter_count(config),
        "convs_per_block": [2**C - 1 for C in config.block_columns],
        "min_input_size": config.min_input_size,
    }
    if image_size is not None:
        out["forward_flops"] = forward_flops(config, image_size)
        out["column_forward_flops"] = [forward_flops(config, image_size, k) for k in range(config.max_columns)]
        out["expected_train_flops"] = expected_train_flops(config, image_size)
    return out


def main(argv: list[str] | None = None) -> int:
    from engine.training import cli_main  # the CLI lives with the trainer; this is its documented entry point

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
