"""Compute only where the boundary is: boundary-following refinement of a verdict map (Fractint's solid guessing).

A trainability map is two flat phases and a boundary of dimension ~1.2-1.7, so most pixels can be inferred from
their neighbours. ``mode="boundary"`` trains a coarse lattice (every ``coarse``-th pixel plus the last row and
column), then, level by level, halves the blocks whose trained samples disagree in verdict -- plus ``margin``
blocks around each, so thin filaments and islands near the boundary are caught -- down to single pixels, and
finally follows the boundary pixel by pixel until no disagreeing 2x2 cell touches an untrained pixel. The other
pixels take a bilinear interpolation of their block's corners, forced to the block's sign (the sign IS the
verdict). The error of that guess is measured, not assumed: a random share of the inferred pixels is trained
too, the disagreement counted (exact Clopper-Pearson 95% interval) and those pixels corrected.

``mode="exact"`` trains every pixel, coarse to fine, so a picture exists after the first pass. Both modes take
pixels already known exactly (``known_*``, e.g. reused from a stored zoom) and never train them or any pixel
twice; ``compute`` gets one large batch per pass (the caller spreads it over cores). Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from engine.errors import Cancelled
from engine.trainability.spec import BOUNDARY_MARGIN

MODES = ("exact", "boundary")
GLANCE_MIN = 256  # a first lattice pass of more pixels than this is split: its every other point comes first
MIN_SAMPLE = 100  # at least this many inferred pixels are trained to measure the error (fewer if fewer exist)
_TINY = float(np.finfo(np.float64).tiny)  # an inferred measure is never 0: its sign is its verdict

Compute = Callable[[np.ndarray], np.ndarray]


@dataclass
class Refinement:
    """A filled map and what was trained for it.

    ``measure``: every pixel (inferred ones interpolated, with the sign of their block's verdict). ``computed``:
    trained here or given exactly in ``known`` (sampled pixels included). ``sampled``: inferred pixels trained
    afterwards to measure the guess's error; ``error_rate``/``error_ci`` (Clopper-Pearson 95%) estimate the share
    of wrong verdicts among the inferred pixels (0 and (0, 0) when nothing was inferred; NaN and (0, 1) when
    sampling was switched off). ``passes``: calls of ``compute``.
    """

    measure: np.ndarray
    computed: np.ndarray
    sampled: np.ndarray
    sample_size: int
    sample_errors: int
    error_rate: float
    error_ci: tuple[float, float]
    passes: int

    def summary(self) -> dict:
        """JSON-safe counts (NaN becomes None), for a result's stats."""
        def f(x):
            return None if not math.isfinite(x) else float(x)

        pixels = int(self.computed.size)
        computed = int(self.computed.sum())
        return {"pixels": pixels, "computed": computed, "inferred": pixels - computed,
                "sample_size": int(self.sample_size), "sample_errors": int(self.sample_errors),
                "error_rate": f(self.error_rate), "error_ci": [f(self.error_ci[0]), f(self.error_ci[1])],
                "passes": int(self.passes)}


def error_interval(errors: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion: it covers the true rate with at least ``level``
    probability whatever the rate. Guess errors are rare (often < 1e-4), where the Wilson and normal intervals
    cover far less often than they claim; this one is wider there, and says so."""
    if n <= 0:
        return (0.0, 1.0)
    from scipy.special import betaincinv  # scipy is a requirement; imported here, only when a sample was taken

    tail = (1.0 - level) / 2
    lo = 0.0 if errors == 0 else float(betaincinv(errors, n - errors + 1, tail))
    hi = 1.0 if errors >= n else float(betaincinv(errors + 1, n - errors, 1.0 - tail))
    return (lo, hi)


def sample_size(inferred: int, sample_fraction: float) -> int:
    """How many of ``inferred`` pixels are trained to measure the error: the fraction, at least ``MIN_SAMPLE``."""
    if inferred <= 0 or sample_fraction <= 0:
        return 0
    return int(min(inferred, max(math.ceil(sample_fraction * inferred), MIN_SAMPLE)))


# ---------------------------------------------------------------------------------------------- lattice geometry
# At stride s the lattice of an axis of n pixels is {0, s, 2s, ...} plus n - 1; block k spans the closed interval
# [k s, min((k + 1) s, n - 1)]. With s a power of two the lattice at s/2 contains the one at s, and block k's
# halves are blocks 2k and 2k + 1.


def _on_lattice(n: int, s: int) -> np.ndarray:
    r = np.arange(n)
    return (r % s == 0) | (r == n - 1)


def _block_bounds(n: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    nb = max(1, -(-(n - 1) // s))
    k = np.arange(nb)
    return np.minimum(k * s, n - 1), np.minimum((k + 1) * s, n - 1)


def _pixel_blocks(n: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the block holding it and the one whose closing edge it is (the same block off the edges)."""
    nb = max(1, -(-(n - 1) // s))
    r = np.arange(n)
    a = np.minimum(r // s, nb - 1)
    b = np.where((r % s == 0) & (r > 0), r // s - 1, a)
    return a, np.minimum(b, nb - 1)


def _dilate(a: np.ndarray, m: int) -> np.ndarray:
    """Boolean dilation by a (2m+1)^2 square (separable: rows, then columns)."""
    rows = a.copy()
    for d in range(1, m + 1):
        rows[d:] |= a[:-d]
        rows[:-d] |= a[d:]
    out = rows.copy()
    for d in range(1, m + 1):
        out[:, d:] |= rows[:, :-d]
        out[:, :-d] |= rows[:, d:]
    return out


class _Map:
    """The map being built: measures (NaN where untrained), the trained mask and the pass bookkeeping."""

    def __init__(self, shape, compute: Compute, known_measure, known_mask, should_stop):
        self.ny, self.nx = shape
        self.compute = compute
        self.should_stop = should_stop
        self.measure = np.full(shape, np.nan)
        self.computed = np.zeros(shape, dtype=bool)
        if known_mask is not None:
            self.measure[known_mask] = known_measure[known_mask]
            self.computed[known_mask] = True
        self.passes = 0
        self.trained = 0

    def run(self, flat: np.ndarray) -> None:
        """One pass: train ``flat`` (row-major indices, none trained before) in one call."""
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("refinement cancelled")
        flat = np.ascontiguousarray(flat, dtype=np.int64)
        if self.computed.flat[flat].any():  # a bug here would silently waste network-steps
            raise RuntimeError("refine: a pixel was scheduled twice")
        values = np.asarray(self.compute(flat), dtype=np.float64).reshape(-1)
        if values.shape != flat.shape:
            raise ValueError(f"compute: must return one measure per index ({flat.size}), got {values.size}")
        self.measure.flat[flat] = values
        self.computed.flat[flat] = True
        self.passes += 1
        self.trained += int(flat.size)

    def lattice_points(self, s: int) -> np.ndarray:
        return np.outer(_on_lattice(self.ny, s), _on_lattice(self.nx, s))

    def mixed(self, s: int) -> np.ndarray:
        """Blocks at stride ``s`` whose trained pixels (anywhere in the closed block) hold both verdicts."""
        conv = self.computed & (self.measure < 0)
        div = self.computed & ~(self.measure < 0)
        ly, hy = _block_bounds(self.ny, s)
        lx, hx = _block_bounds(self.nx, s)

        def box(a):
            S = np.zeros((self.ny + 1, self.nx + 1), dtype=np.int64)
            S[1:, 1:] = a.cumsum(0).cumsum(1)
            return (S[np.ix_(hy + 1, hx + 1)] - S[np.ix_(ly, hx + 1)] - S[np.ix_(hy + 1, lx)]
                    + S[np.ix_(ly, lx)])

        with np.errstate(invalid="ignore"):
            return (box(conv) > 0) & (box(div) > 0)

    def cover(self, split: np.ndarray, s: int) -> np.ndarray:
        """Pixels inside the closed rectangle of any ``split`` block at stride ``s``."""
        ay, by = _pixel_blocks(self.ny, s)
        ax, bx = _pixel_blocks(self.nx, s)
        return (split[np.ix_(ay, ax)] | split[np.ix_(ay, bx)] | split[np.ix_(by, ax)]
                | split[np.ix_(by, bx)])

    def filled(self, strides) -> np.ndarray:
        """Trained pixels as they are; every other pixel bilinear from the corners of the finest block (over
        ``strides``, coarse first) whose four corners are trained, with the sign forced off zero."""
        out = self.measure.copy()
        todo = ~self.computed
        if not todo.any():
            return out
        C, M = self.computed, self.measure
        for s in strides:
            if s < 2:
                continue
            ly, hy = _block_bounds(self.ny, s)
            lx, hx = _block_bounds(self.nx, s)
            ok = C[np.ix_(ly, lx)] & C[np.ix_(ly, hx)] & C[np.ix_(hy, lx)] & C[np.ix_(hy, hx)]
            if not ok.any():
                continue
            ay, _ = _pixel_blocks(self.ny, s)
            ax, _ = _pixel_blocks(self.nx, s)
            rr, cc = np.nonzero(ok[np.ix_(ay, ax)] & todo)  # only pixels of blocks with four trained corners
            r0, r1, c0, c1 = ly[ay[rr]], hy[ay[rr]], lx[ax[cc]], hx[ax[cc]]
            ty = (rr - r0) / np.maximum(r1 - r0, 1)
            tx = (cc - c0) / np.maximum(c1 - c0, 1)
            out[rr, cc] = ((1 - ty) * ((1 - tx) * M[r0, c0] + tx * M[r0, c1])
                           + ty * ((1 - tx) * M[r1, c0] + tx * M[r1, c1]))
        guess = out[todo]
        out[todo] = np.where(guess < 0, np.minimum(guess, -_TINY), np.maximum(guess, _TINY))
        return out


def _strides(coarse: int) -> list[int]:
    out, s = [], coarse
    while s >= 1:
        out.append(s)
        s //= 2
    return out


def _check(shape, mode, known_measure, known_mask, coarse, margin, sample_fraction):
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in shape)):
        raise ValueError(f"shape: must be (n_y, n_x) with positive integers, got {shape!r}")
    shape = (int(shape[0]), int(shape[1]))
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    if not isinstance(coarse, (int, np.integer)) or isinstance(coarse, bool) or coarse < 1 or coarse & (coarse - 1):
        raise ValueError(f"coarse: must be a power of two >= 1, got {coarse!r}")
    if not isinstance(margin, (int, np.integer)) or isinstance(margin, bool) or margin < 0:
        raise ValueError(f"margin: must be an integer >= 0, got {margin!r}")
    if not (isinstance(sample_fraction, (int, float)) and 0 <= sample_fraction <= 1):
        raise ValueError(f"sample_fraction: must be a number in [0, 1], got {sample_fraction!r}")
    if known_measure is None:
        if known_mask is not None:
            raise ValueError("known_mask: given without known_measure")
        return shape, None, None
    km = np.asarray(known_measure, dtype=np.float64)
    if km.shape != shape:
        raise ValueError(f"known_measure: must have shape {shape}, got {km.shape}")
    mask = np.isfinite(km) if known_mask is None else np.asarray(known_mask)
    if mask.shape != shape or mask.dtype != bool:
        raise ValueError(f"known_mask: must be a boolean array of shape {shape}, got {mask.dtype} {mask.shape}")
    if not np.isfinite(km[mask]).all():
        raise ValueError("known_measure: a pixel marked known has no finite measure")
    return shape, km, mask


def refine(shape, compute: Compute, *, mode: str = "boundary", known_measure=None, known_mask=None,
           coarse: int = 8, margin: int = BOUNDARY_MARGIN, sample_fraction: float = 0.01, seed: int = 0,
           on_partial=None, should_stop=None) -> Refinement:
    """Fill an ``(n_y, n_x)`` map, training pixels through ``compute(flat_indices) -> measures`` (measure < 0
    iff converged; row-major indices; one call per pass).

    ``on_partial(measure_filled, computed_mask, fraction)`` after each pass (fresh arrays; ``fraction``: share
    of the planned work done, rising to 1). ``should_stop()`` is polled before every pass: true raises
    :class:`engine.errors.Cancelled`. The same arguments give the same passes and result (``seed`` picks the
    error sample).
    """
    shape, known_measure, known_mask = _check(shape, mode, known_measure, known_mask, coarse, margin,
                                              sample_fraction)
    grid = _Map(shape, compute, known_measure, known_mask, should_stop)
    strides = _strides(int(coarse))
    last = [0.0]

    def report(fraction: float) -> None:
        last[0] = fraction = min(1.0, max(last[0], fraction))
        if on_partial is not None:  # the glance's stride too: a picture before the coarse lattice is complete
            on_partial(grid.filled([2 * strides[0]] + strides), grid.computed.copy(), fraction)

    if mode == "exact":
        planned = int((~grid.computed).sum())
        glance = _glance(grid, strides[0], grid.lattice_points(strides[0]) & ~grid.computed)
        if glance is not None:
            grid.run(glance)
            report(grid.trained / planned)
        for s in strides:
            flat = np.flatnonzero(grid.lattice_points(s) & ~grid.computed)
            if flat.size:
                grid.run(flat)
                report(grid.trained / planned)
        return _result(grid, strides, np.zeros(shape, dtype=bool), 0, 0)

    levels = [s for s in strides if s >= 2]  # halving steps; then pixel-level boundary tracing at stride 1
    state = {"level": 0}

    def next_batch() -> np.ndarray | None:
        while state["level"] < len(levels):
            s = levels[state["level"]]
            state["level"] += 1
            split = _dilate(grid.mixed(s), int(margin))
            pts = grid.cover(split, s) & grid.lattice_points(s // 2) & ~grid.computed
            if pts.any():
                return np.flatnonzero(pts)
        split = _dilate(grid.mixed(1), int(margin))
        pts = grid.cover(split, 1) & ~grid.computed
        return np.flatnonzero(pts) if pts.any() else None

    first = grid.lattice_points(strides[0]) & ~grid.computed
    glance = _glance(grid, strides[0], first)
    if glance is not None:
        grid.run(glance)
        report(grid.trained / (grid.trained + 4 * int(first.sum())))  # the whole lattice and its refinement
        first &= ~grid.computed
    batch = np.flatnonzero(first)
    if not batch.size:
        batch = next_batch()
    while batch is not None:
        grid.run(batch)
        batch = next_batch()
        # Each finer level trains ~2x the pixels of the one before (a boundary of dimension ~1-1.6, margins).
        left = 0 if batch is None else batch.size * (2 ** (len(levels) - state["level"] + 1) - 1)
        untrained = int((~grid.computed).sum())
        pending = sample_size(max(untrained - left, 0), sample_fraction)
        report(grid.trained / (grid.trained + left + pending) if left + pending else 1.0)

    guess = grid.filled(strides)
    inferred = np.flatnonzero(~grid.computed)
    k = sample_size(inferred.size, sample_fraction)
    sampled = np.zeros(shape, dtype=bool)
    errors = 0
    if k:
        pick = np.sort(np.random.default_rng(seed).choice(inferred, size=k, replace=False))
        grid.run(pick)
        errors = int(((guess.flat[pick] < 0) != (grid.measure.flat[pick] < 0)).sum())
        sampled.flat[pick] = True
        report(1.0)
    return _result(grid, strides, sampled, k, errors, guess=guess, inferred=int(inferred.size))


def _glance(grid: _Map, coarse: int, first: np.ndarray) -> np.ndarray | None:
    """The coarse lattice's every other point, trained before the rest of it: a picture within a second or
    two of a large view (17 x 17 pixels of a 256² one), where the whole lattice takes several. It changes only
    the order of the first pass (refinement decides nothing before the lattice is complete); None when the
    lattice is small enough to come at once."""
    pts = grid.lattice_points(2 * coarse) & first
    n = int(pts.sum())
    return np.flatnonzero(pts) if 0 < n < int(first.sum()) and int(first.sum()) > GLANCE_MIN else None


def _result(grid: _Map, strides, sampled, k: int, errors: int, guess=None, inferred: int = 0) -> Refinement:
    """The final map: the guess made before the error sample, with the sampled pixels set to their truth (a
    fill redone afterwards would no longer be the guess whose error was measured)."""
    measure = grid.filled(strides) if guess is None else np.where(grid.computed, grid.measure, guess)
    if inferred == 0:
        rate, ci = 0.0, (0.0, 0.0)
    elif k == 0:
        rate, ci = float("nan"), (0.0, 1.0)
    else:
        rate, ci = errors / k, error_interval(errors, k)
    return Refinement(measure=measure, computed=grid.computed.copy(), sampled=sampled, sample_size=int(k),
                      sample_errors=int(errors), error_rate=float(rate), error_ci=ci, passes=grid.passes)
