"""FractalNet (Larsson, Maire & Shakhnarovich, ICLR 2017) as the paper draws it: config, layout and modules.

Why its own code: public ports get the details wrong (a different "global" column per join, dropped paths
computed and masked afterwards, joins of joins instead of one C-way join), and those details are the paper's
claims. Here dropped paths are never computed, joins merge as in Figure 1, and batch-norm statistics are kept
per evaluation configuration. Torch only: no knowledge of training, files or pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.specs import SpecMixin, check_items, check_value, short_repr, spec_field

JOINS: dict[str, str] = {
    "mean": "element-wise mean of the active inputs (the paper)",
    "learned": "softmax over learned per-input logits, renormalised over the active inputs",
}

MAX_COLUMNS = 6  # 63 convs per block; beyond this the block is a research question of its own
# Upper limits of a config (a link or a pasted list must not ask for a network no machine here can hold):
MAX_BLOCKS = 9  # each block halves the image: 2^9 = 512 px, the largest side a run trains on
MAX_FILTERS = 4096  # per block; the paper's widest is 512 (CIFAR) / 1024 (ImageNet)
MAX_PARAMETERS = 200_000_000  # 0.8 GB of float32 weights, ~3.2 GB with gradients and AdamW's two moments


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
    join: str = spec_field("mean", choices=tuple(JOINS), label="Join",
                           help=" · ".join(f"{k}: {v}" for k, v in JOINS.items()) + ".")
    drop_path: bool = spec_field(True, label="Drop-path", help="Each mini-batch trains a random sub-network: "
                                 "local (drop join inputs) or global (one column).")
    local_drop: float = spec_field(0.15, range=(0.0, 0.95), step=0.05, label="Local drop rate",
                                   help="Probability of dropping each input of a join (at least one is kept).")
    global_ratio: float = spec_field(0.5, range=(0.0, 1.0), step=0.1, label="Global share",
                                     help="Share of mini-batches that keep a single column.")
    dropout: float | tuple[float, ...] = 0.0
    head_dropout: float = spec_field(0.0, range=(0.0, 0.95), help="Dropout before the classifier.")
    num_classes: int = spec_field(10, range=(1, 1_000_000), cli=False, ui=False,
                                  help="Set from the dataset at train time.")
    in_channels: int = spec_field(3, range=(1, 1024), cli=False, ui=False, help="Set from the dataset at train time.")

    def __post_init__(self) -> None:
        # JSON gives lists back; normalise so a round trip compares equal.
        for name in ("columns", "filters", "dropout"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        self.check_fields()
        filters = check_items("filters", self.filters, _count(MAX_FILTERS), min_len=1, max_len=MAX_BLOCKS,
                              what="filter counts (one per block)")
        n, each = len(filters), f"values (one per block: {len(filters)})"
        columns = (check_items("columns", self.columns, _count(MAX_COLUMNS), min_len=n, max_len=n, what=each)
                   if isinstance(self.columns, tuple) else _count(MAX_COLUMNS)("columns", self.columns))
        dropout = (check_items("dropout", self.dropout, _rate, min_len=n, max_len=n, what=each)
                   if isinstance(self.dropout, tuple) else _rate("dropout", self.dropout))
        for name, value in (("filters", filters), ("columns", columns), ("dropout", dropout)):
            object.__setattr__(self, name, value)
        total = parameter_counts(self)[0]
        if total > MAX_PARAMETERS:
            raise ValueError(f"filters: these filters and columns give {total:,} parameters; allowed at most "
                             f"{MAX_PARAMETERS:,} (use fewer filters, columns or blocks)")

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


def _count(most: int) -> Any:
    return lambda name, value: check_value(name, value, int, range=(1, most))


def _rate(name: str, value: Any) -> float:
    rate = check_value(name, value, float, range=(0.0, 1.0))
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: must be a rate in [0, 1), got {short_repr(value)}")
    return value if type(value) in (int, float) else rate  # as given: an int keeps its JSON (the store key)


def parameter_counts(config: FractalNetConfig) -> tuple[int, list[int]]:
    """Trainable parameters of the network and of each column alone (its convs in every block plus the head),
    counted from the layout without building a module, so any accepted config is priced at once."""
    def conv(cin: int, cout: int) -> int:
        return 9 * cin * cout + 2 * cout  # 3x3 conv without bias, batch-norm scale and shift

    head = config.filters[-1] * config.num_classes + config.num_classes
    total, columns = head, [head] * config.max_columns
    cin = config.in_channels
    for cout, C in zip(config.filters, config.block_columns):
        paths = [conv(cin, cout) + (2**c - 1) * conv(cout, cout) for c in range(C)]
        total += sum(paths) + (sum(len(cols) for cols in _Layout.of(C).joins.values())
                               if config.join == "learned" else 0)
        for k in range(config.max_columns):
            columns[k] += paths[_column_in_block(k, C)]
        cin = cout
    return total, columns


# --------------------------------------------------------------------------------------------------------------
# The block's layout: which conv sits where, which joins take what. Pure data, shared by the module (to run it)
# and by the page (to draw it), so the diagram can never disagree with the network.
# --------------------------------------------------------------------------------------------------------------


def _period(columns: int, column: int) -> int:
    """Column ``column`` holds a conv every ``2^(C-1-column)`` depth positions."""
    return 2 ** (columns - 1 - column)


@lru_cache(maxsize=4096)
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


def column_active(layout: _Layout, column: int) -> dict[int, tuple[int, ...]]:
    """Every join of a block keeping only network column ``column`` (the block's deepest if it has fewer)."""
    c = _column_in_block(column, layout.columns)
    return {pos: ((c,) if c in cols else cols) for pos, cols in layout.joins.items()}


def sample_drop_path(config: FractalNetConfig, generator: torch.Generator | None = None,
                     layouts: list[_Layout] | None = None) -> DropPathSample:
    """Draw one mini-batch's subnetwork (global with probability ``global_ratio``, else local) from the layout
    alone, so the cost estimate draws the very samples training does without building the model."""
    layouts = [_Layout.of(C) for C in config.block_columns] if layouts is None else layouts

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    if float(rand(1)) < config.global_ratio:
        k = int(torch.randint(config.max_columns, (1,), generator=generator))
        return DropPathSample("global", k, tuple(column_active(lay, k) for lay in layouts))
    active = []
    for lay in layouts:
        per_join = {}
        for pos, cols in lay.joins.items():
            keep = rand(len(cols)) >= config.local_drop
            if not bool(keep.any()):
                keep[int(torch.randint(len(cols), (1,), generator=generator))] = True
            per_join[pos] = tuple(c for c, k in zip(cols, keep.tolist()) if k)
        active.append(per_join)
    return DropPathSample("local", None, tuple(active))


def needed(layout: _Layout, active: dict[int, tuple[int, ...]]) -> tuple[set[tuple[int, int]], set[int]]:
    """Convs ``(column, position)`` and joins (positions) a block's output depends on, given ``active``.

    Walks the positions from the block's last join back to its input: a needed join needs the convs of its kept
    inputs; a needed conv needs whatever feeds it. Everything else is never run.
    """
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
        return column_active(self.layout, column)

    def needed(self, active: dict[int, tuple[int, ...]]) -> tuple[set[tuple[int, int]], set[int]]:
        """See :func:`needed`: the convs and joins this block's output depends on."""
        return needed(self.layout, active)

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

    * Expansion rule: ``f_1(z) = conv(z)``, ``f_{C+1}(z) = join(f_C(f_C(z)), conv(z))`` with conv = 3x3
      Conv-BN-ReLU (+ dropout); consecutive joins merge, so the join ending a block takes one input per column.
      Column ``c`` (0 = shallowest) holds ``2^c`` convs; a block has ``2^C - 1``. Every column's output is 2x2
      max-pooled before the block's last join (as the authors' code does).
    * Join: ``"mean"`` of the active inputs (the paper) or ``"learned"`` (softmax over one logit per input,
      renormalised over the active ones; equal logits give the mean).
    * Drop-path, once per mini-batch: local (each join input dropped with ``local_drop``, one always kept) or
      global (one column for the whole net) with probability ``global_ratio``; the sampled subnetwork's
      unneeded convs are not run. ``model(x, column=k)`` runs column k alone (``-1`` = deepest).

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
        """Draw one mini-batch's subnetwork (see :func:`sample_drop_path`)."""
        return sample_drop_path(self.config, generator, [b.layout for b in self.blocks])

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
