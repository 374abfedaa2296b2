"""The fractal boundary of neural-network trainability (Sohl-Dickstein, 2024), as a grid of tiny networks.

Every pixel of a grid trains the same one-hidden-layer network — same data, same initial weights — with its own
two hyperparameters (the learning rates of the two layers, or a weight offset and a shared learning rate), and
is coloured by whether training converged. The boundary between the two regions is fractal; zooming into it is
what the Trainability Explorer does, one recomputed grid per view.

Faithful to the authors' code (``the_boundary_of_neural_network_trainability_is_fractal.ipynb``):

* Network: width ``n``, no biases, mean-field parameterisation: ``Z = X @ W0 / sqrt(n)``;
  ``H = tanh(sqrt(2) Z)`` (tanh), ``sqrt(2) relu(Z)`` (relu) or ``Z`` (identity);
  ``out = (H @ W1 / sqrt(n)) / sqrt(n)``; ``W0 ~ N(0, 1)`` of shape ``(n, n)``, ``W1 ~ N(0, 1)`` of ``(n, 1)``.
* Data: ``X ~ N(0, 1)`` of shape ``(N, n)``, ``Y ~ N(0, 1)`` of ``(N, 1)``; by default ``N`` is the number of
  parameters (``n*n + n``; ``n`` for the identity network).
* Loss: mean squared error. Plain gradient descent, one learning rate per layer, full batch by default; with
  ``batch_size`` each step draws that many rows with replacement (the same draw for every pixel) while the
  recorded loss stays the full-batch loss.
* The loss before each of the ``T`` updates is recorded and turned into :func:`convergence_measure`.

The arithmetic lives in :mod:`engine.trainability_kernels` (one batched tensor program over many pixels,
hand-derived gradients, diverged pixels dropped as soon as their loss is non-finite). This module holds the
spec, the registries the pages list choices from, tiling, the task function and the CLI.

    from engine.trainability import GridSpec, run_grid
    result = run_grid(GridSpec(resolution=64))
    result.measure    # float64 (n_y, n_x); row i is the i-th y of logspace(y0, y1, n_y)
    result.converged  # bool, same shape
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from engine.device import resolve_device
from engine.errors import Cancelled
from engine.specs import SpecMixin
from engine.trainability_kernels import make_problem, train_pixels

# --------------------------------------------------------------------------------------------------- registries


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


PHASE_SPACES: dict[str, PhaseSpace] = {
    "lr_vs_lr": PhaseSpace(
        "lr_vs_lr",
        "Learning rate of each layer",
        "log₁₀ input-layer learning rate",
        "log₁₀ output-layer learning rate",
        "x: the input layer's learning rate, y: the output layer's (each layer has its own).",
    ),
    "offset_vs_lr": PhaseSpace(
        "offset_vs_lr",
        "Weight offset and learning rate",
        "log₁₀ input-layer weight offset",
        "log₁₀ learning rate",
        "x: an offset added to every entry of the input-layer weights, y: one learning rate for both layers.",
    ),
}

DTYPES = {"float64": torch.float64, "float32": torch.float32}

# Limits a spec is validated against (and why):
MAX_WIDTH = 256  # a "tiny network" explorer; wider nets make a pixel cost like a real training run
MAX_SAMPLES = 100_000
MIN_STEPS, MAX_STEPS = 20, 100_000  # the measure averages the last 20 losses
MAX_SIDE = 8192  # the paper's figures are 4096 px
AXIS_LIMIT = 30.0  # |log10| of any hyperparameter: 1e30 is already far past any boundary
_FLOAT_EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}
_ULPS_APART = 4  # neighbouring pixels must differ by at least this many units in the last place


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _default_samples(activation: str, width: int) -> int:
    """The paper's dataset size: one sample per parameter (``n*n + n``), or ``n`` for the deep linear network."""
    return width if activation == "identity" else width * width + width


# ------------------------------------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class GridSpec(SpecMixin):
    """One trainability grid: the network, its data, training, and the view (two log10 ranges).

    ``resolution`` may be given as an int (square) or ``(n_x, n_y)``; it is stored as ``(n_x, n_y)`` so equal
    grids hash equally. ``offset_every_step`` applies to ``offset_vs_lr`` only: ``False`` adds the offset to
    ``W0`` once, at initialisation; ``True`` adds it before every step, as the authors' code does (needed to
    reproduce their figure).
    """

    activation: str = "tanh"
    width: int = 16
    dataset_size: int | None = None
    batch_size: int | None = None
    steps: int = 500
    phase_space: str = "lr_vs_lr"
    x_range: tuple[float, float] = (-3.0, 6.0)
    y_range: tuple[float, float] = (-3.0, 6.0)
    resolution: tuple[int, int] = (64, 64)
    seed: int = 0
    dtype: str = "float64"
    offset_every_step: bool = False

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if not _is_int(self.width) or not 1 <= self.width <= MAX_WIDTH:
            raise ValueError(f"width: must be an integer in [1, {MAX_WIDTH}], got {self.width!r}")
        set_("width", int(self.width))
        for name in ("dataset_size", "batch_size"):
            v = getattr(self, name)
            if v is not None:
                if not _is_int(v) or not 1 <= v <= MAX_SAMPLES:
                    raise ValueError(
                        f"{name}: must be None (the default) or an integer in [1, {MAX_SAMPLES}], got {v!r}"
                    )
                set_(name, int(v))
        if not _is_int(self.steps) or not MIN_STEPS <= self.steps <= MAX_STEPS:
            raise ValueError(
                f"steps: must be an integer in [{MIN_STEPS}, {MAX_STEPS}] (the measure averages the last 20 "
                f"losses), got {self.steps!r}"
            )
        set_("steps", int(self.steps))
        if self.phase_space not in PHASE_SPACES:
            raise ValueError(f"phase_space: must be one of {', '.join(PHASE_SPACES)}, got {self.phase_space!r}")
        res = self.resolution
        if _is_int(res):
            res = (res, res)
        if (
            not isinstance(res, (tuple, list))
            or len(res) != 2
            or not all(_is_int(r) and 2 <= r <= MAX_SIDE for r in res)
        ):
            raise ValueError(
                f"resolution: must be an integer or a pair (n_x, n_y) of integers in [2, {MAX_SIDE}], got {res!r}"
            )
        set_("resolution", (int(res[0]), int(res[1])))
        for name, n in (("x_range", self.resolution[0]), ("y_range", self.resolution[1])):
            set_(name, _check_range(name, getattr(self, name), n))
        if not _is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed: must be an integer in [0, 2**63), got {self.seed!r}")
        set_("seed", int(self.seed))
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not isinstance(self.offset_every_step, (bool, np.bool_)):
            raise ValueError(f"offset_every_step: must be True or False, got {self.offset_every_step!r}")
        set_("offset_every_step", bool(self.offset_every_step))
        if self.offset_every_step and self.phase_space != "offset_vs_lr":
            raise ValueError("offset_every_step: applies only to phase_space 'offset_vs_lr'; leave it False")

    # ---- derived quantities

    @property
    def n_samples(self) -> int:
        """The dataset size N actually used (``dataset_size``, or the paper's default)."""
        return self.dataset_size if self.dataset_size is not None else _default_samples(self.activation, self.width)

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
        """The pixels' x coordinates (log10 units): ``numpy.linspace(x0, x1, n_x)``, in float64."""
        return np.linspace(self.x_range[0], self.x_range[1], self.n_x)

    @property
    def y_values(self) -> np.ndarray:
        """The pixels' y coordinates (log10 units): ``numpy.linspace(y0, y1, n_y)``, in float64."""
        return np.linspace(self.y_range[0], self.y_range[1], self.n_y)

    def tiles(self, tile_size: int | tuple[int, int] = 32) -> list["GridTile"]:
        """Cut the grid into independent tiles of at most ``tile_size`` pixels a side (row-major order).

        Each tile carries this spec and its index ranges, so its pixel coordinates come from the global grid
        index in float64: computing a grid tile by tile gives exactly the same numbers as computing it whole.
        """
        tw, th = (tile_size, tile_size) if _is_int(tile_size) else tile_size
        if not (_is_int(tw) and _is_int(th) and tw >= 1 and th >= 1):
            raise ValueError(f"tile_size: must be a positive integer or a pair of them, got {tile_size!r}")
        return [
            GridTile(self, (r, min(r + th, self.n_y)), (c, min(c + tw, self.n_x)))
            for r in range(0, self.n_y, th)
            for c in range(0, self.n_x, tw)
        ]


def _check_range(name: str, value: Any, n: int) -> tuple[float, float]:
    """Validate one axis range and return it as a pair of floats (so ``(0, 1)`` and ``(0.0, 1.0)`` hash alike)."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a pair (low, high) of numbers in log10 units, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}: both ends must be finite numbers, got {value!r}")
    if not lo < hi:
        raise ValueError(f"{name}: empty range; needs low < high, got ({lo!r}, {hi!r})")
    if lo < -AXIS_LIMIT or hi > AXIS_LIMIT:
        raise ValueError(f"{name}: must lie within [-{AXIS_LIMIT:g}, {AXIS_LIMIT:g}] (log10 units), got ({lo}, {hi})")
    spacing = (hi - lo) / (n - 1)
    ulp = float(np.spacing(max(abs(lo), abs(hi), 1.0)))
    if spacing < _ULPS_APART * ulp or spacing * math.log(10.0) < _ULPS_APART * _FLOAT_EPS["float64"]:
        raise ValueError(
            f"{name}: ({lo!r}, {hi!r}) is narrower than float64 can resolve at {n} pixels "
            f"(neighbouring pixels would be under {_ULPS_APART} units in the last place apart); widen it"
        )
    return (lo, hi)


@dataclass(frozen=True)
class GridTile(SpecMixin):
    """A rectangle of a grid, ``rows`` and ``cols`` as half-open index ranges: an independent unit of work."""

    grid: GridSpec
    rows: tuple[int, int]
    cols: tuple[int, int]

    def __post_init__(self) -> None:
        for name, (a, b), n in (("rows", self.rows, self.grid.n_y), ("cols", self.cols, self.grid.n_x)):
            if not (_is_int(a) and _is_int(b) and 0 <= a < b <= n):
                raise ValueError(f"{name}: must be a non-empty index range within [0, {n}], got {(a, b)!r}")
            object.__setattr__(self, name, (int(a), int(b)))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows[1] - self.rows[0], self.cols[1] - self.cols[0])

    @property
    def x_values(self) -> np.ndarray:
        return self.grid.x_values[self.cols[0] : self.cols[1]]

    @property
    def y_values(self) -> np.ndarray:
        return self.grid.y_values[self.rows[0] : self.rows[1]]


@dataclass
class GridResult:
    """A computed grid. ``measure`` and ``converged`` have shape ``(n_y, n_x)``; row i is ``y_values[i]``."""

    spec: GridSpec
    measure: np.ndarray
    converged: np.ndarray
    x_values: np.ndarray
    y_values: np.ndarray
    elapsed_s: float
    steps_run: int = 0  # network-steps actually computed (diverged pixels stop early)
    init_hash: str | None = None


@dataclass
class TileResult:
    tile: GridTile
    measure: np.ndarray
    converged: np.ndarray
    steps_run: int


# ----------------------------------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """One of the paper's six experiments, with an initial view that shows its boundary."""

    name: str
    title: str
    description: str
    spec: GridSpec
    paper_dimension: float  # the box-counting dimension the paper reports (from 4096² zoom sequences)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "tanh",
            "tanh, full batch",
            "The headline figure: a tanh network trained full batch, input- vs output-layer learning rate.",
            GridSpec(activation="tanh", x_range=(-3.0, 6.0), y_range=(-3.0, 6.0)),
            1.66,
        ),
        Preset(
            "relu",
            "ReLU, full batch",
            "The same experiment with a ReLU network: the boundary is rougher in some places, smoother in others.",
            GridSpec(activation="relu", x_range=(-3.0, 6.0), y_range=(-3.0, 6.0)),
            1.20,
        ),
        Preset(
            "linear",
            "deep linear (identity), N = n",
            "A linear network (identity activation) on as many samples as its width: fractal even without a "
            "nonlinearity.",
            GridSpec(activation="identity", x_range=(-3.0, 6.0), y_range=(-3.0, 6.0)),
            1.17,
        ),
        Preset(
            "tanh_minibatch",
            "tanh, minibatch 16",
            "tanh with stochastic gradient descent on 16 rows per step (the same draws for every pixel).",
            GridSpec(activation="tanh", batch_size=16, x_range=(-3.0, 6.0), y_range=(-3.0, 6.0)),
            1.55,
        ),
        Preset(
            "tanh_single",
            "tanh, dataset size 1",
            "tanh trained on a single datapoint.",
            GridSpec(activation="tanh", dataset_size=1, x_range=(-3.0, 6.0), y_range=(-3.0, 6.0)),
            1.41,
        ),
        Preset(
            "offset",
            "weight offset vs learning rate",
            "tanh with one learning rate for both layers (y) and an offset added to every input-layer weight (x), "
            "re-added before every step as in the authors' code (offset_every_step=False adds it once).",
            GridSpec(
                activation="tanh",
                phase_space="offset_vs_lr",
                x_range=(-5.0, 1.0),
                y_range=(-2.0, 4.0),
                offset_every_step=True,
            ),
            1.98,
        ),
    ]
}


def preset(name: str, **overrides: Any) -> GridSpec:
    """The spec of preset ``name`` with ``overrides`` applied (validated like any spec)."""
    if name not in PRESETS:
        raise ValueError(f"preset: must be one of {', '.join(PRESETS)}, got {name!r}")
    return dataclasses.replace(PRESETS[name].spec, **overrides)


# ------------------------------------------------------------------------------------------------ the measure

MAX_VALUE = 1e6


def convergence_measure(losses: Any) -> np.ndarray:
    """The paper's convergence measure of loss curves ``losses`` (array ``(..., T)``), as float64 ``(...)``.

    Exactly: non-finite losses become 1e6; ``v = v / v[0]``; clip at 1e6; converged iff ``mean(v[-20:]) < 1``;
    the measure is ``-sum(v)`` if converged, else ``sum(1/v)``. So ``measure < 0`` iff converged, and its
    magnitude grows with how fast the network converged (or diverged): the boundary is the zero crossing.
    (The authors' literal code turns an infinite loss into NaN; here any non-finite value counts as 1e6, so the
    measure is never NaN.)
    """
    v = np.asarray(losses, dtype=np.float64)
    if v.ndim == 0 or v.shape[-1] < 1:
        raise ValueError("losses: needs a last axis of at least one loss per curve")
    v = np.where(np.isfinite(v), v, MAX_VALUE)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = v / v[..., :1]
        v = np.where(np.isnan(v), MAX_VALUE, v)  # 0/0 (a loss of exactly zero at init): count as the cap
        v = np.minimum(v, MAX_VALUE)
        converged = v[..., -20:].mean(axis=-1) < 1
        return np.where(converged, -v.sum(axis=-1), (1.0 / v).sum(axis=-1))


# ---------------------------------------------------------------------------------------------------- the data

INIT_KEYS = ("X", "Y", "W0", "W1")


def draw_init(spec: GridSpec) -> dict[str, np.ndarray]:
    """The data and initial weights that ``init=None`` uses: float64 draws from ``numpy.random.default_rng(seed)``,
    in the order W0 ``(n, n)``, W1 ``(n, 1)``, X ``(N, n)``, Y ``(N, 1)`` (weights first, as the authors do)."""
    rng = np.random.default_rng(spec.seed)
    n, N = spec.width, spec.n_samples
    W0 = rng.standard_normal((n, n))
    W1 = rng.standard_normal((n, 1))
    X = rng.standard_normal((N, n))
    Y = rng.standard_normal((N, 1))
    return {"X": X, "Y": Y, "W0": W0, "W1": W1}


def draw_batches(spec: GridSpec) -> np.ndarray | None:
    """The minibatch rows of every step, shape ``(steps, batch_size)`` (None for full batch): drawn with
    replacement from ``default_rng([seed, 1])``, shared by every pixel, and independent of ``init=``."""
    if spec.batch_size is None:
        return None
    rng = np.random.default_rng([spec.seed, 1])
    return rng.integers(0, spec.n_samples, size=(spec.steps, spec.batch_size), dtype=np.int64)


def _check_init(spec: GridSpec, init: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate user-given arrays against the spec's shapes; return float64 copies with canonical shapes."""
    if not isinstance(init, Mapping):
        raise ValueError(f"init: must be None or a dict of arrays {{{', '.join(INIT_KEYS)}}}")
    missing = [k for k in INIT_KEYS if k not in init]
    extra = sorted(set(init) - set(INIT_KEYS))
    if missing or extra:
        raise ValueError(f"init: needs exactly the arrays {', '.join(INIT_KEYS)} (missing {missing}, unknown {extra})")
    n, N = spec.width, spec.n_samples
    want = {"X": (N, n), "Y": (N, 1), "W0": (n, n), "W1": (n, 1)}
    out = {}
    for k in INIT_KEYS:
        a = np.asarray(init[k], dtype=np.float64)
        if k in ("Y", "W1") and a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.shape != want[k]:
            raise ValueError(
                f"init: {k} must have shape {want[k]} for width {n} and dataset size {N}, got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"init: {k} contains non-finite values")
        out[k] = np.ascontiguousarray(a)
    return out


def init_hash(init: Mapping[str, Any] | None) -> str:
    """A stable digest of user-given arrays (shapes and float64 values), for the cache key; '' for None.

    A 1-D ``Y`` or ``W1`` hashes like the column it is used as, so equal computations share a key."""
    if init is None:
        return ""
    h = hashlib.sha256()
    for k in sorted(init):
        a = np.ascontiguousarray(np.asarray(init[k], dtype=np.float64))
        if k in ("Y", "W1") and a.ndim == 1:
            a = a.reshape(-1, 1)
        h.update(f"{k}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------- hyperparams


def hyperparameters(spec: GridSpec, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel ``(lr0, lr1, offset)`` (float64) for log10 coordinates ``x`` and ``y`` (same shape)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if spec.phase_space == "lr_vs_lr":
        return np.power(10.0, x), np.power(10.0, y), np.zeros_like(x)
    lr = np.power(10.0, y)
    return lr, lr.copy(), np.power(10.0, x)


def _problem(spec: GridSpec, init: Mapping[str, Any] | None, device: torch.device):
    data = draw_init(spec) if init is None else _check_init(spec, init)
    return make_problem(
        spec.activation,
        data["X"],
        data["Y"],
        data["W0"],
        data["W1"],
        spec.steps,
        draw_batches(spec),
        DTYPES[spec.dtype],
        device,
    )


def _train_tile(problem, tile: GridTile, on_progress=None, should_stop=None) -> TileResult:
    xs, ys = np.meshgrid(tile.x_values, tile.y_values)  # (rows, cols), row-major pixel order
    lr0, lr1, offset = hyperparameters(tile.grid, xs.ravel(), ys.ravel())
    losses, steps_run = train_pixels(
        problem, lr0, lr1, offset, tile.grid.offset_every_step, on_progress=on_progress, should_stop=should_stop
    )
    measure = convergence_measure(losses).reshape(tile.shape)
    return TileResult(tile, measure, measure < 0, steps_run)


def run_tile(tile: GridTile, init=None, progress=None, cancel=None, device=None) -> TileResult:
    """Compute one tile on its own (what a cluster worker would run). Same numbers as inside ``run_grid``."""
    dev = resolve_device(device)
    problem = _problem(tile.grid, init, dev)
    total = tile.shape[0] * tile.shape[1] * tile.grid.steps
    done = [0]

    def on_progress(work):
        done[0] += work
        if progress is not None:
            progress(min(1.0, done[0] / total))

    stop = (lambda: cancel.is_set()) if cancel is not None else None
    with _single_threaded_ops(dev):
        res = _train_tile(problem, tile, on_progress, stop)
    if cancel is not None and cancel.is_set():
        raise Cancelled("trainability tile cancelled")
    return res


# ------------------------------------------------------------------------------------------------------ run_grid


_threads_lock = threading.Lock()
_threads_depth = 0
_threads_saved = 1


def _workers(device: torch.device) -> int:
    """CPU worker threads (one tile each, single-threaded ops): ``$FRACTAL_LAB_THREADS``, else torch's count."""
    if device.type != "cpu":
        return 1
    env = os.environ.get("FRACTAL_LAB_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    with _threads_lock:  # inside another grid's single-threaded section, count the threads it put aside
        n = _threads_saved if _threads_depth else torch.get_num_threads()
    return max(1, n)


@contextlib.contextmanager
def _single_threaded_ops(device: torch.device):
    """Run torch's CPU ops single-threaded while the kernel works (restored afterwards, re-entrant).

    The kernel's tensors are cache-sized on purpose; splitting such ops over cores costs more in thread
    wake-ups than it gains (a single pixel's curve was measured 40x slower with 2 intra-op threads on a busy
    2-core machine). Parallelism comes from worker threads running whole tiles instead.
    """
    global _threads_depth, _threads_saved
    if device.type != "cpu":
        yield
        return
    with _threads_lock:
        if _threads_depth == 0:
            _threads_saved = torch.get_num_threads()
            if _threads_saved != 1:
                torch.set_num_threads(1)
        _threads_depth += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_depth -= 1
            if _threads_depth == 0 and _threads_saved != 1:
                torch.set_num_threads(_threads_saved)


def default_tile_size(spec: GridSpec, device: torch.device | None = None, workers: int = 1) -> int:
    """Tile side: big enough to keep the kernel's slots full, small enough that every worker gets tiles and a
    tile's loss history (pixels x steps, float64) stays around 32 MB."""
    cap = 128 if device is not None and device.type == "cuda" else 32
    side = max(1, min(cap, int(math.sqrt(4_000_000 / spec.steps))))
    while side > 4 and math.ceil(spec.n_x / side) * math.ceil(spec.n_y / side) < 2 * workers:
        side //= 2
    return side


def run_grid(spec: GridSpec, init=None, progress=None, cancel=None, device=None) -> GridResult:
    """Train one network per pixel of ``spec`` and return the convergence measure of each.

    ``init``: None (draw from ``spec.seed``, see :func:`draw_init`) or a dict of arrays ``{X, Y, W0, W1}`` used
    exactly as given. ``progress(fraction)`` is called from the calling thread as tiles advance; ``cancel`` is
    an object with ``is_set()``: when it becomes true the work stops and :class:`engine.errors.Cancelled` is
    raised. ``device``: None/"auto" (CUDA if available), "cpu", "cuda", ...

    On a CPU, tiles are spread over worker threads (``$FRACTAL_LAB_THREADS``, default ``torch.get_num_threads()``)
    each running single-threaded tensor ops: for tensors this small that beats splitting every op over cores.
    """
    if not isinstance(spec, GridSpec):
        raise ValueError(f"spec: must be a GridSpec, got {type(spec).__name__}")
    t0 = time.perf_counter()
    dev = resolve_device(device)
    problem = _problem(spec, init, dev)
    workers = _workers(dev)
    tiles = spec.tiles(default_tile_size(spec, dev, workers))
    workers = min(workers, len(tiles))
    total = spec.n_x * spec.n_y * spec.steps
    lock = threading.Lock()
    done = [0]
    stop = threading.Event()

    def on_progress(work):
        with lock:
            done[0] += work

    def should_stop():
        return stop.is_set() or (cancel is not None and cancel.is_set())

    def job(tile):
        if should_stop():
            return None
        return _train_tile(problem, tile, on_progress, should_stop)

    if _use_processes(spec, dev, workers):
        from concurrent.futures.process import BrokenProcessPool

        try:
            results = _run_tiles_in_processes(spec, init, tiles, workers, total, progress, cancel)
            return _assemble(spec, results, init, t0, progress)
        except BrokenProcessPool:
            # A worker could not start (typically a script calling run_grid without an
            # `if __name__ == "__main__":` guard, which spawned workers re-import): same result on threads.
            pass
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trainability")
    with _single_threaded_ops(dev), pool:
        futures = [pool.submit(job, t) for t in tiles]
        results = _drive_tiles(futures, stop, lambda: done[0] / total, progress, cancel)
    return _assemble(spec, results, init, t0, progress)


def _assemble(spec: GridSpec, results, init, t0: float, progress) -> GridResult:
    """Stitch tile results into the grid's arrays (tiles never overlap, so order does not matter)."""
    measure = np.empty(spec.shape, dtype=np.float64)
    steps_run = 0
    for r in results:
        (r0, r1), (c0, c1) = r.tile.rows, r.tile.cols
        measure[r0:r1, c0:c1] = r.measure
        steps_run += r.steps_run
    if progress is not None:
        progress(1.0)
    return GridResult(
        spec=spec,
        measure=measure,
        converged=measure < 0,
        x_values=spec.x_values,
        y_values=spec.y_values,
        elapsed_s=time.perf_counter() - t0,
        steps_run=steps_run,
        init_hash=init_hash(init) or None,
    )


# Worker threads share one interpreter: the kernel's ops are small, so Python's dispatch (under the GIL) is a
# large part of each step and two threads reached only ~1.0-1.3 busy cores (bench/trainability.py, quiet 2-core
# machine). Big grids therefore run their tiles in worker processes, one interpreter per core. Small grids stay
# on threads: starting a process (importing torch) costs ~2 s, more than such a grid takes.
PROCESS_MIN_NETWORK_STEPS = 1_000_000


def _use_processes(spec: GridSpec, device: torch.device, workers: int) -> bool:
    """Processes for CPU grids of at least PROCESS_MIN_NETWORK_STEPS; ``$FRACTAL_LAB_GRID_PROCESSES=0`` turns
    them off (``=1`` forces them, e.g. for tests)."""
    env = os.environ.get("FRACTAL_LAB_GRID_PROCESSES", "").strip()
    if device.type != "cpu" or workers < 2 or env == "0":
        return False
    return env == "1" or spec.n_x * spec.n_y * spec.steps >= PROCESS_MIN_NETWORK_STEPS


_WORKER: dict[str, Any] = {}


def _process_init(init, cancel_event, done_counter) -> None:
    torch.set_num_threads(1)  # one interpreter per core; see _single_threaded_ops
    _WORKER.update(init=init, cancel=cancel_event, done=done_counter, problems={})


def _process_tile(tile: GridTile) -> TileResult | None:
    """Run one tile in a worker process; the problem (data and weights) is built once per process and spec."""
    cancel, done = _WORKER["cancel"], _WORKER["done"]
    if cancel.is_set():
        return None
    key = tile.grid.content_hash()
    problems = _WORKER["problems"]
    if key not in problems:
        problems.clear()
        problems[key] = _problem(tile.grid, _WORKER["init"], torch.device("cpu"))

    def on_progress(work):
        with done.get_lock():
            done.value += int(work)

    return _train_tile(problems[key], tile, on_progress, cancel.is_set)


def _run_tiles_in_processes(spec, init, tiles, workers, total, progress, cancel) -> list[TileResult]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")  # fork after torch has started threads is unsafe
    stop = ctx.Event()
    done = ctx.Value("q", 0)
    init_arrays = None if init is None else _check_init(spec, init)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_process_init,
                             initargs=(init_arrays, stop, done)) as pool:
        futures = [pool.submit(_process_tile, tile) for tile in tiles]
        return _drive_tiles(futures, stop, lambda: done.value / total, progress, cancel)


def _drive_tiles(futures, stop, fraction, progress, cancel) -> list[TileResult]:
    """Wait for the tile futures (threads or processes), reporting ``progress(fraction())``. On cancel, an error,
    or Ctrl-C: set ``stop`` (the workers poll it between steps), drop the tiles not started, and raise."""
    pending = set(futures)
    last = -1.0
    try:
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            for f in finished:
                if f.exception() is not None:
                    raise f.exception()
            if cancel is not None and cancel.is_set():
                raise Cancelled("trainability grid cancelled")
            if progress is not None:
                frac = min(1.0, fraction())
                if frac != last:
                    progress(frac)
                    last = frac
    except BaseException:
        stop.set()
        for f in pending:
            f.cancel()
        raise
    results = [f.result() for f in futures]
    if any(r is None for r in results):
        raise Cancelled("trainability grid cancelled")
    return results


def pixel_loss_curve(spec: GridSpec, x: float, y: float, init=None, device=None) -> np.ndarray:
    """The ``T`` recorded losses of the single network at log10 coordinates ``(x, y)``, recomputed with the same
    data, weights and minibatch draws as the grid (float64; ``+inf`` after the first non-finite loss, where the
    grid stops that network too). At a grid pixel's own coordinates (``spec.x_values[j]``, ``spec.y_values[i]``)
    the curve gives the grid's verdict and its measure to ~1e-6 (a single network runs in differently shaped
    tensor ops than a tile, and BLAS rounds the last bit per shape)."""
    dev = resolve_device(device)
    problem = _problem(spec, init, dev)
    lr0, lr1, offset = hyperparameters(spec, np.array([float(x)]), np.array([float(y)]))
    with _single_threaded_ops(dev):
        losses, _ = train_pixels(problem, lr0, lr1, offset, spec.offset_every_step, slots=1)
    return losses[0]


# ---------------------------------------------------------------------------------------------------- cost model

#: Network-steps per second of ``run_grid`` on the project's 2-core CPU (tanh preset, 128x128, 500 steps, every
#: pixel counted as 500 steps), measured by ``bench/trainability.py`` with tiles in worker processes on a lightly
#: loaded machine: 86,672 (float64) and 222,335 (float32). Small grids run on threads and reach about half of
#: that, so the estimate uses the threaded figures for a conservative guess.
CPU_RATE = {"float64": 41_000.0, "float32": 131_000.0}
_REF_COST = 272 * 16 * (2 * 16 + 10)


def network_steps(spec: GridSpec) -> int:
    """Work of a grid in network-steps: pixels x steps (a diverged pixel counts in full, as in the benchmark)."""
    return spec.n_x * spec.n_y * spec.steps


def _cost_per_step(spec: GridSpec) -> float:
    """Relative arithmetic of one network-step: two ``N x n x n`` products plus ~10 elementwise passes over the
    ``N x n`` activations (the forward pass only, plus a B-row backward pass, for minibatch training)."""
    n, N = spec.width, spec.n_samples
    if spec.batch_size is None:
        return N * n * (2 * n + 10)
    return N * n * (n + 5) + spec.batch_size * n * (n + 8)


def estimate_seconds(spec: GridSpec) -> float:
    """Seconds the grid should take on this project's 2-core CPU (an upper bound: diverged pixels stop early,
    and a GPU is faster)."""
    rate = CPU_RATE[spec.dtype] * _REF_COST / max(_cost_per_step(spec), 1.0)
    return network_steps(spec) / rate


def float32_resolves(spec: GridSpec) -> bool:
    """Whether float32 can tell neighbouring pixels apart in this view (else the page should use float64).

    A learning rate enters the arithmetic as a relative factor, so neighbouring pixels need learning rates at
    least a few float32 units in the last place apart (relative spacing ``10**dx - 1``). An offset is added to
    weights of order one, so there the *absolute* spacing ``offset * (10**dx - 1)`` must be a few ulps of
    ``max(1, offset)``; the tightest pixel is the smallest offset of the view.
    """
    eps = _ULPS_APART * _FLOAT_EPS["float32"]
    rel_x = math.expm1((spec.x_range[1] - spec.x_range[0]) / (spec.n_x - 1) * math.log(10.0))
    rel_y = math.expm1((spec.y_range[1] - spec.y_range[0]) / (spec.n_y - 1) * math.log(10.0))
    if spec.phase_space == "offset_vs_lr":
        rel_x *= min(1.0, 10.0 ** spec.x_range[0])
    return bool(rel_x >= eps and rel_y >= eps)


# ------------------------------------------------------------------------------------------- task function, CLI


def run_to_dir(spec: GridSpec, out_dir, progress=None, cancel=None) -> None:
    """Compute ``spec`` and write ``measure.npy``, ``converged.npy``, ``spec.json``, ``image.png`` and
    ``dimension.json`` into ``out_dir`` (the job runner's and the CLI's task function)."""
    from engine.fractal_dimension import box_counting_dimension
    from engine.render import png_bytes, render_measure

    if isinstance(spec, Mapping):
        spec = GridSpec.from_dict(dict(spec))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = run_grid(spec, progress=(lambda f: progress(0.98 * f)) if progress else None, cancel=cancel)
    np.save(out / "measure.npy", result.measure)
    np.save(out / "converged.npy", result.converged)
    (out / "spec.json").write_text(spec.to_json(indent=2))
    (out / "image.png").write_bytes(png_bytes(render_measure(result.measure)))
    dim = box_counting_dimension(result.measure)
    (out / "dimension.json").write_text(json.dumps(_jsonable(dim.to_dict()), indent=2, sort_keys=True))
    if progress is not None:
        progress(1.0)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m engine.trainability",
        description="Compute a trainability grid (Sohl-Dickstein 2024) and write measure.npy, converged.npy, "
        "spec.json, image.png and dimension.json into --out.",
    )
    ap.add_argument("--preset", default="tanh", choices=list(PRESETS), help="starting point (default: tanh)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--activation", choices=list(ACTIVATIONS))
    ap.add_argument("--width", type=int)
    ap.add_argument("--dataset-size", type=int, help="N (default: the paper's, n*n+n; n for identity)")
    ap.add_argument("--batch-size", type=int, help="minibatch size (default: full batch)")
    ap.add_argument("--full-batch", action="store_true", help="clear the preset's batch size")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--phase-space", choices=list(PHASE_SPACES))
    ap.add_argument("--x-range", type=float, nargs=2, metavar=("LO", "HI"), help="log10 range of x")
    ap.add_argument("--y-range", type=float, nargs=2, metavar=("LO", "HI"), help="log10 range of y")
    ap.add_argument("--resolution", type=int, nargs="+", metavar="N", help="N (square) or N_X N_Y")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--dtype", choices=list(DTYPES))
    ap.add_argument("--offset-every-step", action=argparse.BooleanOptionalAction, default=None)
    return ap.parse_args(argv)


def spec_from_args(args: argparse.Namespace) -> GridSpec:
    """The GridSpec a command line asks for: the preset, with every flag that was given applied."""
    over: dict[str, Any] = {}
    for name in ("activation", "width", "dataset_size", "batch_size", "steps", "phase_space", "seed", "dtype",
                 "offset_every_step"):
        v = getattr(args, name)
        if v is not None:
            over[name] = v
    if args.full_batch:
        over["batch_size"] = None
    if args.x_range is not None:
        over["x_range"] = tuple(args.x_range)
    if args.y_range is not None:
        over["y_range"] = tuple(args.y_range)
    if args.resolution is not None:
        if len(args.resolution) not in (1, 2):
            raise ValueError("resolution: give one integer (square) or two (n_x n_y)")
        r = args.resolution
        over["resolution"] = (r[0], r[0]) if len(r) == 1 else (r[0], r[1])
    return preset(args.preset, **over)


def main(argv=None) -> int:
    from tqdm import tqdm

    args = _parse_args(argv)
    try:
        spec = spec_from_args(args)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{spec.n_x}x{spec.n_y} grid, {network_steps(spec) / 1e6:.3g} M network-steps, "
          f"about {estimate_seconds(spec):.0f} s; writing to {args.out}")
    t0 = time.perf_counter()
    with tqdm(total=1000, unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining}") as bar:

        def progress(fraction, info=None):
            bar.update(max(0, int(round(fraction * 1000)) - bar.n))

        run_to_dir(spec, Path(args.out), progress=progress)
    print(f"done in {time.perf_counter() - t0:.1f} s: {', '.join(sorted(p.name for p in Path(args.out).iterdir()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
