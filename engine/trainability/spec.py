"""What one trainability grid is: the network, its data, training and the view, as a frozen, hashable spec.

Every field is declared once with its range, choices and help (``spec_field``), so the explorer's widgets, its
links and the CLI's flags are generated from here; the checks that span fields (a range float64 can resolve,
offsets only in the offset phase space) follow ``check_fields()`` in ``__post_init__``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.specs import SpecMixin, nested_spec, short_repr, spec_field


@dataclass(frozen=True)
class Activation:
    """A hidden-layer nonlinearity, as the authors define it (the ``sqrt(2)`` keeps the variance at init)."""

    name: str
    title: str
    formula: str


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", "tanh", "H = tanh(√2 · Z)"),
    "relu": Activation("relu", "ReLU", "H = √2 · relu(Z)"),
    "identity": Activation("identity", "identity (deep linear)", "H = Z"),
}


@dataclass(frozen=True)
class PhaseSpace:
    """What the two axes of a grid mean. Both axes are log10 of a positive hyperparameter."""

    name: str
    title: str
    x_label: str
    y_label: str
    description: str
    x_short: str
    y_short: str


PHASE_SPACES: dict[str, PhaseSpace] = {
    "lr_vs_lr": PhaseSpace(
        "lr_vs_lr",
        "Learning rate of each layer",
        "log₁₀ input-layer learning rate",
        "log₁₀ output-layer learning rate",
        "x: the input layer's learning rate, y: the output layer's (each layer has its own).",
        "lr₀", "lr₁",
    ),
    "offset_vs_lr": PhaseSpace(
        "offset_vs_lr",
        "Weight offset and learning rate",
        "log₁₀ input-layer weight offset",
        "log₁₀ learning rate",
        "x: an offset added to every entry of the input-layer weights, y: one learning rate for both layers.",
        "offset", "lr",
    ),
}

DTYPE_NAMES = ("float64", "float32")

# Limits a spec is validated against (and why):
MAX_WIDTH = 256  # a "tiny network" explorer; wider nets make a pixel cost like a real training run
MAX_SAMPLES = 100_000
MIN_STEPS, MAX_STEPS = 20, 100_000  # the measure averages the last 20 losses
MAX_SIDE = 8192  # the paper's figures are 4096 px
AXIS_LIMIT = 30.0  # |log10| of any hyperparameter: 1e30 is already far past any boundary
FLOAT_EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}
ULPS_APART = 4  # neighbouring pixels must differ by at least this many units in the last place
REFINE_MODES = ("exact", "boundary")
#: Blocks around every mixed block that boundary refinement splits too (``refine.refine``'s ``margin``). 1 missed
#: a minibatch map's isolated specks near the boundary (26 pixels of 512², enough to move its box-counting
#: dimension by +0.023); 2 catches all but 4 (+0.015) for ~30% more networks trained. It decides a refined grid's
#: pixels, so it is part of a refined grid's key (:meth:`GridSpec.content_hash`); exact grids' keys never hold it.
BOUNDARY_MARGIN = 2
MAX_LATTICE_LEVEL = 60  # 2**-60 of a root step is far below what float64 resolves; the range check says so first
MAX_LATTICE_INDEX = 2**53  # lattice indices are converted to float64 exactly below this

Lattice = tuple[float, float, float, float, int, int, int]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def default_samples(activation: str, width: int) -> int:
    """The paper's dataset size: one sample per parameter (``n*n + n``), or ``n`` for the deep linear network."""
    return width if activation == "identity" else width * width + width


@dataclass(frozen=True)
class GridSpec(SpecMixin):
    """One trainability grid. ``resolution`` may be given as an int (square); it is stored as ``(n_x, n_y)``
    so equal grids hash equally."""

    activation: str = spec_field(
        "tanh", choices=tuple(ACTIVATIONS),
        help="Non-linearity of the hidden layer (identity = deep linear network).")
    width: int = spec_field(
        16, range=(1, MAX_WIDTH), help="Hidden width n; the input dimension equals n as in the paper.")
    dataset_size: int | None = spec_field(
        None, range=(1, MAX_SAMPLES),
        help="Number of training examples N; none (blank) = the paper's default: the number of parameters, or "
             "N = n for the linear network.")
    batch_size: int | None = spec_field(
        None, range=(1, MAX_SAMPLES),
        help="Minibatch size (the same draws for every pixel); none (blank) = full batch.")
    steps: int = spec_field(
        500, range=(MIN_STEPS, MAX_STEPS),
        help="Gradient-descent steps per network (the paper uses 500; the measure averages the last 20 losses).")
    phase_space: str = spec_field(
        "lr_vs_lr", choices=tuple(PHASE_SPACES),
        help="Which two hyperparameters the axes are: both layers' learning rates, or a weight offset against "
             "one shared learning rate.")
    x_range: tuple[float, float] = spec_field(
        (-3.0, 6.0), range=(-AXIS_LIMIT, AXIS_LIMIT), ui=False, help="log10 range of the x axis (low high).")
    y_range: tuple[float, float] = spec_field(
        (-3.0, 6.0), range=(-AXIS_LIMIT, AXIS_LIMIT), ui=False, help="log10 range of the y axis (low high).")
    resolution: tuple[int, int] = spec_field(
        (64, 64), range=(2, MAX_SIDE), ui=False, cli=False,
        help="Pixels (networks) per side: n_x n_y, or one number for a square grid.")
    seed: int = spec_field(0, range=(0, 2**63 - 1),
                           help="Seed for the data and initial weights (shared by every pixel).")
    dtype: str = spec_field(
        "float64", choices=DTYPE_NAMES,
        help="Arithmetic precision. float32 is faster; views too narrow for float32 are computed in float64.")
    offset_every_step: bool = spec_field(
        False, help="Add the offset to W0 before every step (the authors' code) instead of only at "
                    "initialisation; offset_vs_lr only.")
    refine: str = spec_field(
        "exact", choices=REFINE_MODES, omit_default=True,
        help="Which pixels are trained: exact = every one; boundary = a coarse lattice, then only blocks whose "
             "verdicts disagree (plus a margin of neighbours) down to full resolution; the rest take their "
             "block's verdict with an interpolated measure, and a random 1% of them is trained to measure the "
             "error.")
    lattice: Lattice | None = spec_field(
        None, ui=False, cli=False, omit_default=True,
        help="(x_origin, x_step, y_origin, y_step, level, col0, row0): pixel j's x is x_origin + ((col0 + j) * "
             "x_step) * 2**-level (y likewise), so zooms by powers of two on one root view share pixels bit for "
             "bit; none = numpy.linspace over x_range and y_range. Set by views.view_spec.")

    def content_hash(self, extra: str = "") -> str:
        """The store key's digest; a refined grid's also holds :data:`BOUNDARY_MARGIN`, so a map refined with
        another margin is recomputed, never served as this one."""
        if self.refine != "exact":
            extra = f"{extra}|boundary_margin={BOUNDARY_MARGIN}"
        return super().content_hash(extra)

    def __post_init__(self) -> None:
        if _is_int(self.resolution):
            object.__setattr__(self, "resolution", (self.resolution, self.resolution))
        self.check_fields()
        if self.lattice is not None:
            self._apply_lattice()
        for name, n in (("x_range", self.n_x), ("y_range", self.n_y)):
            _check_resolvable(name, getattr(self, name), n)
        if self.offset_every_step and self.phase_space != "offset_vs_lr":
            raise ValueError("offset_every_step: applies only to phase_space 'offset_vs_lr'; leave it False")

    def _apply_lattice(self) -> None:
        """Check ``lattice`` and set ``x_range``/``y_range`` to its exact first and last coordinates. A range that
        disagrees with the lattice is refused rather than silently replaced: ``dataclasses.replace(spec,
        resolution=...)`` keeps the lattice and would otherwise compute a different view."""
        lat = self.lattice
        if isinstance(lat, (str, bytes)) or not isinstance(lat, Sequence) or len(lat) != 7:
            raise ValueError(f"lattice: must be (x_origin, x_step, y_origin, y_step, level, col0, row0) or none, "
                             f"got {short_repr(lat)}")
        reals = []
        for name, v in zip(("x_origin", "x_step", "y_origin", "y_step"), lat[:4]):
            ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            if not (ok and math.isfinite(float(v))) or (name.endswith("step") and not float(v) > 0):
                what = "a positive number" if name.endswith("step") else "a finite number"
                raise ValueError(f"lattice: {name} must be {what}, got {short_repr(v)}")
            reals.append(float(v))
        ints = []
        for name, v, n in zip(("level", "col0", "row0"), lat[4:], (None, self.n_x, self.n_y)):
            if not _is_int(v):
                raise ValueError(f"lattice: {name} must be an integer, got {short_repr(v)}")
            v = int(v)
            if n is None and not 0 <= v <= MAX_LATTICE_LEVEL:
                raise ValueError(f"lattice: level must be an integer in [0, {MAX_LATTICE_LEVEL}], got {v}")
            if n is not None and not (abs(v) + n <= MAX_LATTICE_INDEX):
                raise ValueError(f"lattice: {name} must be within +-{MAX_LATTICE_INDEX - n}, got {v}")
            ints.append(v)
        object.__setattr__(self, "lattice", (*reals, *ints))
        for name, values, step in (("x_range", self.x_values, reals[1]), ("y_range", self.y_values, reals[3])):
            derived = (float(values[0]), float(values[-1]))
            given = getattr(self, name)
            tol = 1e-6 * step * 2.0 ** -ints[0]
            if any(not abs(g - d) <= tol for g, d in zip(given, derived)):
                raise ValueError(f"{name}: ({given[0]!r}, {given[1]!r}) is not the lattice's view ({derived[0]!r}, "
                                 f"{derived[1]!r}); give both consistently (views.view_spec does) or lattice none")
            object.__setattr__(self, name, derived)

    @property
    def n_samples(self) -> int:
        """The dataset size N actually used (``dataset_size``, or the paper's default)."""
        return self.dataset_size if self.dataset_size is not None else default_samples(self.activation, self.width)

    @property
    def n_x(self) -> int:
        return self.resolution[0]

    @property
    def n_y(self) -> int:
        return self.resolution[1]

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the result arrays: ``(n_y, n_x)``."""
        return (self.n_y, self.n_x)

    @property
    def x_values(self) -> np.ndarray:
        """The pixels' x coordinates (log10 units), in float64: ``numpy.linspace(x0, x1, n_x)``, or on the
        ``lattice`` ``x_origin + ((col0 + j) * x_step) * 2**-level`` (in this order, so the bits are exact)."""
        if self.lattice is None:
            return np.linspace(self.x_range[0], self.x_range[1], self.n_x)
        return lattice_values(self.lattice[0], self.lattice[1], self.lattice[4], self.lattice[5], self.n_x)

    @property
    def y_values(self) -> np.ndarray:
        """The pixels' y coordinates (log10 units), in float64; see :attr:`x_values`."""
        if self.lattice is None:
            return np.linspace(self.y_range[0], self.y_range[1], self.n_y)
        return lattice_values(self.lattice[2], self.lattice[3], self.lattice[4], self.lattice[6], self.n_y)

    def tiles(self, tile_size: int | tuple[int, int] = 32) -> list["GridTile"]:
        """The grid cut into independent tiles of at most ``tile_size`` pixels a side (row-major order); pixel
        coordinates come from the global index, so a tiled grid computes the same pixels as a whole one."""
        tw, th = (tile_size, tile_size) if _is_int(tile_size) else tile_size
        if not (_is_int(tw) and _is_int(th) and tw >= 1 and th >= 1):
            raise ValueError(f"tile_size: must be a positive integer or a pair of them, got {tile_size!r}")
        return [
            GridTile(self, (r, min(r + th, self.n_y)), (c, min(c + tw, self.n_x)))
            for r in range(0, self.n_y, th)
            for c in range(0, self.n_x, tw)
        ]


def lattice_values(origin: float, step: float, level: int, first: int, n: int) -> np.ndarray:
    """``origin + ((first + j) * step) * 2**-level`` for j < n, in float64 and in exactly this order: scaling by a
    power of two is exact, so index i on level L and index 2i on level L + 1 give the same bits."""
    index = np.arange(n, dtype=np.int64) + np.int64(first)
    return origin + (index * np.float64(step)) * (2.0 ** -int(level))


def _check_resolvable(name: str, value: tuple[float, float], n: int) -> None:
    """An axis range must be non-empty and wide enough that float64 tells its ``n`` pixels apart."""
    lo, hi = value
    if not lo < hi:
        raise ValueError(f"{name}: empty range; needs low < high, got ({lo!r}, {hi!r})")
    spacing = (hi - lo) / (n - 1)
    ulp = float(np.spacing(max(abs(lo), abs(hi), 1.0)))
    if spacing < ULPS_APART * ulp or spacing * math.log(10.0) < ULPS_APART * FLOAT_EPS["float64"]:
        raise ValueError(
            f"{name}: ({lo!r}, {hi!r}) is narrower than float64 can resolve at {n} pixels "
            f"(neighbouring pixels would be under {ULPS_APART} units in the last place apart); widen it"
        )


@dataclass(frozen=True)
class GridTile(SpecMixin):
    """A rectangle of a grid, ``rows`` and ``cols`` as half-open index ranges: an independent unit of work."""

    grid: GridSpec
    rows: tuple[int, int]
    cols: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", nested_spec("grid", GridSpec, self.grid))
        for name, n in (("rows", self.grid.n_y), ("cols", self.grid.n_x)):
            pair = getattr(self, name)
            ok = isinstance(pair, (tuple, list)) and len(pair) == 2 and all(_is_int(v) for v in pair)
            if not (ok and 0 <= pair[0] < pair[1] <= n):
                raise ValueError(f"{name}: must be a non-empty index range within [0, {n}], got {short_repr(pair)}")
            object.__setattr__(self, name, (int(pair[0]), int(pair[1])))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows[1] - self.rows[0], self.cols[1] - self.cols[0])

    @property
    def x_values(self) -> np.ndarray:
        return self.grid.x_values[self.cols[0] : self.cols[1]]

    @property
    def y_values(self) -> np.ndarray:
        return self.grid.y_values[self.rows[0] : self.rows[1]]
