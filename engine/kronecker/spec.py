"""The frozen setups: :class:`KronSpec` (which graph) and :class:`KronTrainSpec` (how to train it).

The page, its links, the CLI, the job runner and the store key all describe a Kronecker setup with these two
objects, so each field is declared once here (range, choices, help) and every place that offers it reads that
declaration. Text readers for matrices and names (CLI flags, links, the paste box) live here too.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

import numpy as np

from engine.kronecker.graph import KronGraph, check_name, square_rows, to_sparse
from engine.kronecker.tasks import TASKS
from engine.specs import SpecMixin, check_items, check_value, json_depth, nested_spec, short_repr, spec_field

#: A spec keeps a setup drawable on a laptop: at most this many nodes ...
MAX_NODES = 65_536
#: ... and at most this many stored adjacency entries (diagonal included) in the grown graph.
MAX_ENTRIES = 4_000_000
#: Largest power a spec may ask for (``3 ** 12`` nodes would already exceed MAX_NODES).
MAX_POWER = 12
#: Largest base graph a spec accepts (the page edits it in a table).
MAX_BASE_NODES = 16
#: The largest grown graph trained here: a few minutes of CPU time at tiny widths.
MAX_TRAIN_NODES = 1024
#: Characters of matrix text read from a link, the paste box or a flag (16 x 16 long decimals fit many times).
MAX_MATRIX_TEXT = 65_536

BLOCK_KINDS = ("mlp", "transformer")
EDGE_WEIGHTS = ("none", "static", "dynamic")
COMBINES = ("mean", "concat")
BASELINES = ("base", "sequential", "untied")

Matrix = tuple[tuple[float, ...], ...]


# ----------------------------------------------------------------------------------------------------------------
# reading matrices and names from text (CLI flags, links, the paste box)
# ----------------------------------------------------------------------------------------------------------------


def parse_names(text: str) -> tuple[str, ...]:
    """``"abc"`` -> ``a, b, c`` (the papers write ``aa ab ac``); commas or spaces switch to whole-word names."""
    text = text.strip()
    if "," in text or any(ch.isspace() for ch in text):
        return tuple(part for part in re.split(r"[,\s]+", text) if part)
    return tuple(text)


def parse_matrix(text: str, field: str = "base") -> list[list[float]]:
    """A matrix from text: JSON (``[[1,0],[1,1]]``) or rows separated by ``;`` or new lines (``1 0; 1 1``)."""
    if not isinstance(text, str):
        raise ValueError(f"{field}: must be text such as [[1,0],[1,1]] or '1 0; 1 1', got {type(text).__name__}")
    if len(text) > MAX_MATRIX_TEXT:
        raise ValueError(f"{field}: {len(text):,} characters is too long for a matrix of at most {MAX_BASE_NODES} "
                         f"nodes; allowed at most {MAX_MATRIX_TEXT:,}")
    text = text.strip()
    if not text:
        raise ValueError(f"{field}: the matrix is empty; write it as [[1,0],[1,1]] or '1 0; 1 1'")
    if text.startswith("["):
        depth = json_depth(text)  # json.loads recurses once per level: "[" * 100000 is a RecursionError
        if depth > 2:
            raise ValueError(f"{field}: nested {depth} levels deep; a matrix is a list of rows of numbers, "
                             "allowed 2 levels, e.g. [[1,0],[1,1]]")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{field}: could not read the matrix as JSON ({exc.msg} at character {exc.pos})") \
                from None
        if not isinstance(value, list) or not all(isinstance(r, list) for r in value):
            raise ValueError(f"{field}: must be a list of rows, e.g. [[1,0],[1,1]]")
        return value
    rows = []
    for line in re.split(r"[;\n]+", text):
        if line.strip():
            cells = [c for c in re.split(r"[,\s]+", line.strip()) if c]
            try:
                rows.append([float(c) for c in cells])
            except ValueError:
                raise ValueError(f"{field}: could not read row {short_repr(line.strip())} as numbers") from None
    return rows


def read_table(text: str, field: str = "base") -> list[list[float | None]]:
    """A matrix from text that an editor can show: square, at most MAX_BASE_NODES nodes, numbers or empty cells.

    Whether it is a valid graph (finite, lower-triangular) is :class:`KronSpec`'s to say, so a link with a bad
    entry still opens with the entry on screen and the spec's message beside it.
    """
    rows = square_rows(field, parse_matrix(text, field), allow_empty=True)
    if len(rows) > MAX_BASE_NODES:
        raise ValueError(f"{field}: has {len(rows)} nodes; allowed 1..{MAX_BASE_NODES}")
    return rows


def default_names(n: int, offset: int = 0) -> tuple[str, ...]:
    """Layer names a, b, c... for n nodes (from letter ``offset``), for a matrix given without names."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return tuple(letters[(offset + i) % 26] for i in range(n))


# ----------------------------------------------------------------------------------------------------------------
# presets and the graph spec
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BasePreset:
    """A named base graph the page offers (a registry entry)."""

    matrix: Matrix
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


def _small_matrix(field: str, value: object):
    """``to_sparse`` of a base or second matrix, its size checked first: a 3000 x 3000 list is refused before any
    of its 9 million entries is converted."""
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) == 2:
        n = int(shape[0])
    elif isinstance(value, (list, tuple)):
        n = len(value)
        if any(isinstance(r, (list, tuple)) and len(r) > MAX_BASE_NODES for r in value[:MAX_BASE_NODES]):
            n = max(n, MAX_BASE_NODES + 1)
    else:
        n = 0  # not a matrix: to_sparse names the problem
    if n > MAX_BASE_NODES:
        raise ValueError(f"{field}: has {n} nodes; allowed 1..{MAX_BASE_NODES}")
    return to_sparse(field, value)


def _names(field: str, value: object) -> tuple:
    """Layer names as a tuple (``"abc"`` -> ``a, b, c``); each is checked by ``check_name`` afterwards."""
    if isinstance(value, str):
        value = tuple(value)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{field}: must be a list of layer names (or a text such as 'abc'), got {short_repr(value)}")
    return tuple(value)


def _matrix_tuple(value: np.ndarray) -> Matrix:
    return tuple(tuple(float(x) for x in row) for row in np.asarray(value).tolist())


@dataclass(frozen=True)
class KronSpec(SpecMixin):
    """``base ** power`` (Kronecker power), then ``(x) second`` when a second graph is given.

    Capped at MAX_NODES nodes and MAX_ENTRIES stored entries so that a link cannot ask a laptop for more than it
    can draw; :class:`KronGraph` itself has no cap.
    """

    base: Matrix = PRESETS["example"].matrix
    names: tuple[str, ...] = PRESETS["example"].names
    power: int = spec_field(2, range=(1, MAX_POWER), label="Kronecker power k (base ⊗ base ⊗ … k times)",
                            help="how many times the base graph is multiplied with itself.")
    second: Matrix | None = None
    second_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        base = _small_matrix("base", self.base)
        object.__setattr__(self, "base", _matrix_tuple(base.toarray()))
        object.__setattr__(self, "names", _names("names", self.names))
        n = base.shape[0]
        if len(self.names) != n:
            raise ValueError(f"names: got {len(self.names)} names for {n} nodes; give exactly one name per node")
        for i, name in enumerate(self.names):
            check_name("names", name, i)
        try:
            self.check_fields()  # power, the one declared scalar
        except ValueError:
            raise ValueError(f"power: must be an integer in 1..{MAX_POWER}, got {short_repr(self.power)}") from None
        nodes, entries = n ** self.power, base.nnz ** self.power
        if self.second is None:
            if self.second_names is not None:
                raise ValueError("second_names: given without a second matrix; give both or neither")
        else:
            second = _small_matrix("second", self.second)
            object.__setattr__(self, "second", _matrix_tuple(second.toarray()))
            m = second.shape[0]
            names = None if self.second_names is None else _names("second_names", self.second_names)
            if names is None or len(names) != m:
                got = 0 if names is None else len(names)
                raise ValueError(f"second_names: got {got} names for {m} nodes; give exactly one name per node")
            object.__setattr__(self, "second_names", names)
            for i, name in enumerate(self.second_names):
                check_name("second_names", name, i)
            nodes, entries = nodes * m, entries * second.nnz
        if nodes > MAX_NODES or entries > MAX_ENTRIES:
            raise ValueError(
                f"power: {self.power} grows this base to {nodes:,} nodes and {entries:,} stored entries; allowed at "
                f"most {MAX_NODES:,} nodes and {MAX_ENTRIES:,} entries (largest power here: {self.max_power()})"
            )

    def max_power(self) -> int:
        """The largest power that stays within MAX_NODES / MAX_ENTRIES for this base (and second graph)."""
        base = to_sparse("base", self.base)
        n, e = base.shape[0], base.nnz
        m, f = 1, 1
        if self.second is not None:
            second = to_sparse("second", self.second)
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
        """A short formula such as ``abc^2`` or ``abc ⊗ xy``."""
        sep = "" if all(len(x) == 1 for x in self.names) else ","
        text = sep.join(self.names) + (f"^{self.power}" if self.power != 1 else "")
        if self.second is not None:
            sep2 = "" if all(len(x) == 1 for x in self.second_names) else ","
            text += " ⊗ " + sep2.join(self.second_names)
        return text

    @classmethod
    def from_preset(cls, name: str, power: int = 2) -> "KronSpec":
        if name not in PRESETS:
            raise ValueError(f"preset: unknown preset {short_repr(name)}; choose one of {', '.join(PRESETS)}")
        p = PRESETS[name]
        return cls(base=p.matrix, names=p.names, power=power)


# ----------------------------------------------------------------------------------------------------------------
# the training spec
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KronTrainSpec(SpecMixin):
    """One ``kron_train`` job: the graph on screen, the network, the training and the baselines beside it.

    ``baselines``: ``base`` = the base graph alone (same layers, fewer applications), ``sequential`` = a plain
    stack as deep as one stream with its width matched to the tied net's parameters, ``untied`` = one layer per
    node and stream. ``seed`` sets initialisation and batch order, never the data.
    """

    graph: KronSpec = dataclasses.field(default_factory=KronSpec)
    task: str = spec_field("digits", choices=tuple(TASKS), label="Task", url="t_task",
                           help="what the nets learn.")
    block: str = spec_field("mlp", choices=BLOCK_KINDS, label="Block", url="t_block",
                            help="mlp: one state vector per example; transformer: one state per token "
                                 "(the CLI picks the task's usual block when not given).")
    tied: bool = spec_field(True, label="Tied (reuse the base layers)", url="t_tied",
                            help="tied: one layer per base-layer name, reused at every node and stream; "
                                 "untied: one layer per node and stream.")
    edge_weights: str = spec_field("none", choices=EDGE_WEIGHTS, label="Edge weights", url="t_edges",
                                   help="none: the adjacency values; static: learned scalars; dynamic: a gate "
                                        "per example/token.")
    combine: str = spec_field("mean", choices=COMBINES, label="Combine streams", url="t_combine",
                              help="how the output node's streams become one state.")
    width: int = spec_field(32, range=(4, 1024), label="Width", url="t_width", help="state width of every layer.")
    heads: int = spec_field(2, range=(1, 64), label="Heads", url="t_heads",
                            help="attention heads (transformer blocks); must divide the width.")
    epochs: int = spec_field(5, range=(1, 1000), label="Epochs", url="t_epochs")
    lr: float = spec_field(3e-3, range=(1e-5, 1.0), label="Learning rate", step=0.001, url="t_lr",
                           help="Adam's learning rate (gradients clipped to norm 1).")
    batch_size: int = spec_field(64, range=(1, 4096), label="Batch size", url="t_batch")
    seed: int = spec_field(0, range=(0, 2**31 - 1), label="Seed", url="t_seed")
    baselines: tuple[str, ...] = spec_field(BASELINES, choices=BASELINES, label="Baselines", url="t_baselines",
                                            help="what trains beside the Kronecker net.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "graph", nested_spec("graph", KronSpec, self.graph))
        if isinstance(self.baselines, str):
            object.__setattr__(self, "baselines",
                               tuple(b.strip() for b in self.baselines.split(",") if b.strip()))
        object.__setattr__(self, "baselines", check_items(
            "baselines", self.baselines, lambda _, v: check_value("baselines", v, str, choices=BASELINES),
            max_len=len(BASELINES), what=f"baselines of {list(BASELINES)}"))
        if self.graph.n_nodes > MAX_TRAIN_NODES:
            raise ValueError(f"graph: {self.graph.describe()} has {self.graph.n_nodes:,} nodes; at most "
                             f"{MAX_TRAIN_NODES:,} can be trained here (lower the power)")
        self.check_fields()
        if self.heads > self.width or (self.block == "transformer" and self.width % self.heads):
            raise ValueError(f"heads: must be in 1..width and divide width ({self.width}), got {self.heads}")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown or len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"baselines: distinct items of {list(BASELINES)}, got {list(self.baselines)}")

    def build_graph(self) -> KronGraph:
        """The Kronecker graph this spec trains on."""
        return self.graph.build()

    def model_names(self) -> list[str]:
        """The models this spec trains, in order: the Kronecker net first, then the chosen baselines."""
        names = ["kron_tied" if self.tied else "kron_untied"]
        for b in self.baselines:
            name = {"base": "base", "sequential": "sequential", "untied": "kron_untied"}[b]
            if name not in names:
                names.append(name)
        return names
