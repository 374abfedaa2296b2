"""Box-counting dimension of the trainability boundary (where the measure changes sign): N(s) ~ s^-D.

Two estimators, because they answer different questions: ``dimension``, a least-squares slope over the range of
box sizes where counts are neither saturated nor too few (within a few hundredths on shapes of known dimension),
and ``paper_dimension``, the authors' own recipe (porespy's boxcount, median of ten local slopes), so a number
measured here can be set beside the published ones (:mod:`.presets`). Both count the same edge pixels.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np

# Accurate estimator: where the fit range ends (tuned on Koch snowflakes, disks, lines and noise; see tests).
MIN_SIZE = 2  # 1-px boxes see the pixel staircase of the rasterised boundary, not the set (slope too low)
MIN_BOXES = 100  # fewer boxes than this: finite-size corrections (~ 1/N) bend the curve upward
SATURATION = 0.5  # more than this fraction of the image's boxes occupied: N(s) counts boxes, not the set
OFFSETS = 4  # grid placements averaged per axis and size: the count of one placement jitters by +-10%
MIN_FIT_POINTS = 4  # a sound fit has at least this many sizes ...
MIN_FIT_OCTAVES = 1.0  # ... spanning at least this many factors of two
PAPER_MIN_SIZE = 10  # porespy's boxcount: sizes logspace(1, log10(min(shape)), 10)
PAPER_BINS = 10


def edge_mask(measure: np.ndarray) -> np.ndarray:
    """Boolean (n_y - 1, n_x - 1): True where a 2x2 neighbourhood of ``measure`` holds both signs.

    This is the authors' ``extract_edges``: ``max * min < 0`` over the four corners, so a zero (never produced
    by the convergence measure) touches no edge, and NaN (never produced either) counts as no edge.
    """
    m = np.asarray(measure, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"measure: expected a 2-D array, got shape {m.shape}")
    if m.shape[0] < 2 or m.shape[1] < 2:
        return np.zeros((max(m.shape[0] - 1, 0), max(m.shape[1] - 1, 0)), dtype=bool)
    corners = np.stack((m[1:, 1:], m[:-1, 1:], m[1:, :-1], m[:-1, :-1]), axis=-1)
    with np.errstate(invalid="ignore"):
        return np.max(corners, axis=-1) * np.min(corners, axis=-1) < 0


def _as_mask(measure_or_mask: np.ndarray) -> np.ndarray:
    """A boolean array is taken as the set itself (an edge mask); anything numeric as a measure."""
    a = np.asarray(measure_or_mask)
    if a.ndim != 2:
        raise ValueError(f"measure_or_mask: expected a 2-D array, got shape {a.shape}")
    if a.dtype == bool:
        return a
    return edge_mask(a)


def box_counts(mask: np.ndarray, sizes: Iterable[int], rule: str = "any") -> np.ndarray:
    """Boxes of an s x s grid anchored at pixel 0 (partial boxes at the far borders) that hold the set.

    ``rule="any"``: boxes holding at least one True pixel (the textbook count). ``rule="partial"``: boxes holding
    some but not only True pixels, exactly as ``porespy.metrics.boxcount`` counts them (the authors' tool); on
    a thin boundary the two agree.
    """
    if rule not in ("any", "partial"):
        raise ValueError(f"rule: must be 'any' or 'partial', got {rule!r}")
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    out = []
    for s in sizes:
        s = int(s)
        if s < 1:
            raise ValueError(f"sizes: box sizes must be >= 1 pixel, got {s}")
        ny, nx = -(-h // s), -(-w // s)
        padded = np.zeros((ny * s, nx * s), dtype=bool)
        padded[:h, :w] = mask
        count = int(padded.reshape(ny, s, nx, s).any(axis=(1, 3)).sum())
        if rule == "partial":
            padded[h:, :] = True  # porespy truncates border boxes: a truncated all-True box counts as "all"
            padded[:, w:] = True
            count -= int(padded.reshape(ny, s, nx, s).all(axis=(1, 3)).sum())
        out.append(count)
    return np.asarray(out, dtype=np.int64)


def _box_edges(n: int, s: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end pixel (clipped to [0, n]) of each box of size s whose grid starts ``offset`` px early."""
    starts = np.arange(-offset, n, s)
    lo, hi = np.clip(starts, 0, n), np.clip(starts + s, 0, n)
    keep = hi > lo
    return lo[keep], hi[keep]


def covering_counts(mask: np.ndarray, sizes: Iterable[int], offsets: int = OFFSETS) -> np.ndarray:
    """Occupied s x s boxes, averaged over grid placements, each box weighted by its area inside the image.

    Why not the plain count: one grid placement makes N(s) jitter by several percent from size to size (the
    set falls across box edges differently), and boxes that stick out of the image count as whole boxes, which
    bends the curve of a set that fills the image (N grows like (H/s + 1)^2 instead of (H/s)^2). Averaging
    ``offsets`` placements per axis and weighting each box by the fraction of it inside the image removes both:
    a space-filling set gives exactly H*W/s^2, and a set away from the borders gives the plain count.
    Uses a summed-area table, so every placement costs only its number of boxes.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    table = np.zeros((h + 1, w + 1), dtype=np.int64)
    table[1:, 1:] = mask.cumsum(axis=0, dtype=np.int64).cumsum(axis=1)
    out = []
    for s in sizes:
        s = int(s)
        if s < 1:
            raise ValueError(f"sizes: box sizes must be >= 1 pixel, got {s}")
        k = max(1, min(s, int(offsets)))
        shifts = sorted({int(round(j * s / k)) for j in range(k)})
        rows = [_box_edges(h, s, o) for o in shifts]
        cols = [_box_edges(w, s, o) for o in shifts]
        total = 0.0
        for y0, y1 in rows:
            wy = (y1 - y0) / s
            for x0, x1 in cols:
                wx = (x1 - x0) / s
                inside = (table[np.ix_(y1, x1)] - table[np.ix_(y0, x1)] - table[np.ix_(y1, x0)]
                          + table[np.ix_(y0, x0)])
                total += float(wy @ (inside > 0) @ wx)
        out.append(total / (len(shifts) ** 2))
    return np.asarray(out, dtype=np.float64)


def default_sizes(shape: tuple[int, int], per_octave: int = 4) -> np.ndarray:
    """Integer box sizes log-spaced from 1 px to half the smaller side, ``per_octave`` per factor of two."""
    top = max(1, min(shape) // 2)
    if top == 1:
        return np.array([1], dtype=np.int64)
    n = int(round(math.log2(top) * per_octave)) + 1
    return np.unique(np.round(np.logspace(0, math.log10(top), n)).astype(np.int64))


def paper_sizes(shape: tuple[int, int]) -> np.ndarray:
    """porespy's default sizes: ``unique(logspace(1, log10(min(shape)), 10).astype(int))``."""
    return np.unique(np.logspace(1, np.log10(min(shape)), PAPER_BINS).astype(np.int64))


def _local_slopes(sizes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``-np.gradient(log N, log s)`` as porespy computes it; sizes with N = 0 give non-finite slopes."""
    if len(sizes) < 2:
        return np.full(len(sizes), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.gradient(np.log(counts.astype(np.float64)), np.log(sizes.astype(np.float64)))


def _t_quantile(dof: int) -> float:
    from scipy.special import stdtrit  # not scipy.stats: importing that took 0.8 s of every grid job

    return float(stdtrit(dof, 0.975))


def _nan_or(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if not math.isfinite(x) else x


@dataclasses.dataclass(frozen=True)
class DimensionEstimate:
    """Box-counting dimension of one image's boundary, with everything a plot or a CSV needs.

    ``dimension`` is NaN (and ``reason`` says why) when the image holds no boundary or too little of it;
    ``reason`` also warns when the fit range had to be shortened (a rough estimate).
    """

    dimension: float
    interval: tuple[float, float]  # 95% interval of the least-squares slope
    paper_dimension: float
    sizes: np.ndarray  # box sizes in pixels (accurate estimator)
    counts: np.ndarray  # covering counts at each size (float: averaged over grid placements)
    fit_range: tuple[int, int] | None  # smallest and largest size inside the fit, in pixels
    intercept: float  # of the fit: log N = intercept - dimension * log s
    paper_sizes: np.ndarray
    paper_counts: np.ndarray  # porespy's counts (boxes holding some but not only edge pixels)
    paper_slopes: np.ndarray  # local slopes -d log N / d log s at paper_sizes
    shape: tuple[int, int]  # of the edge mask
    edge_pixels: int
    reason: str = ""

    @property
    def in_fit(self) -> np.ndarray:
        """Boolean per size: inside the fitted range."""
        if self.fit_range is None:
            return np.zeros(len(self.sizes), dtype=bool)
        return (self.sizes >= self.fit_range[0]) & (self.sizes <= self.fit_range[1])

    def fitted_counts(self) -> np.ndarray:
        """The fitted line evaluated at every size (NaN when there is no fit), for the log-log plot."""
        if not math.isfinite(self.dimension):
            return np.full(len(self.sizes), np.nan)
        return np.exp(self.intercept - self.dimension * np.log(self.sizes.astype(np.float64)))

    def table(self) -> list[dict]:
        """One row per box size and estimator, ready for a DataFrame or a CSV download."""
        rows = []
        for s, n, f, i in zip(self.sizes, self.counts, self.fitted_counts(), self.in_fit):
            rows.append({"estimator": "least_squares", "box_size": int(s), "count": float(n),
                         "in_fit": bool(i), "fitted_count": _nan_or(f), "local_slope": None})
        for s, n, d in zip(self.paper_sizes, self.paper_counts, self.paper_slopes):
            rows.append({"estimator": "paper", "box_size": int(s), "count": float(n), "in_fit": True,
                         "fitted_count": None, "local_slope": _nan_or(d)})
        return rows

    def to_dict(self) -> dict:
        """JSON-safe summary (NaN becomes None): what a grid result's ``dimension.json`` holds."""
        return {
            "dimension": _nan_or(self.dimension),
            "interval": [_nan_or(self.interval[0]), _nan_or(self.interval[1])],
            "paper_dimension": _nan_or(self.paper_dimension),
            "sizes": [int(s) for s in self.sizes],
            "counts": [float(c) for c in self.counts],
            "fit_range": None if self.fit_range is None else [int(self.fit_range[0]), int(self.fit_range[1])],
            "intercept": _nan_or(self.intercept),
            "paper_sizes": [int(s) for s in self.paper_sizes],
            "paper_counts": [int(c) for c in self.paper_counts],
            "paper_slopes": [_nan_or(d) for d in self.paper_slopes],
            "shape": [int(self.shape[0]), int(self.shape[1])],
            "edge_pixels": int(self.edge_pixels),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "DimensionEstimate":
        """Inverse of :meth:`to_dict` (e.g. to pool the ``dimension.json`` of cached grids)."""
        def f(x):
            return float("nan") if x is None else float(x)

        fr = data.get("fit_range")
        return cls(
            dimension=f(data["dimension"]),
            interval=(f(data["interval"][0]), f(data["interval"][1])),
            paper_dimension=f(data["paper_dimension"]),
            sizes=np.asarray(data["sizes"], dtype=np.int64),
            counts=np.asarray(data["counts"], dtype=np.float64),
            fit_range=None if fr is None else (int(fr[0]), int(fr[1])),
            intercept=f(data["intercept"]),
            paper_sizes=np.asarray(data["paper_sizes"], dtype=np.int64),
            paper_counts=np.asarray(data["paper_counts"], dtype=np.int64),
            paper_slopes=np.asarray([f(x) for x in data["paper_slopes"]], dtype=np.float64),
            shape=(int(data["shape"][0]), int(data["shape"][1])),
            edge_pixels=int(data["edge_pixels"]),
            reason=str(data.get("reason", "")),
        )


def _longest_run(keep: np.ndarray) -> np.ndarray:
    """The longest contiguous stretch of True in ``keep`` (the fit range must be one interval of sizes)."""
    best, start, best_range = 0, None, (0, 0)
    for i, k in enumerate(list(keep) + [False]):
        if k and start is None:
            start = i
        elif not k and start is not None:
            if i - start > best:
                best, best_range = i - start, (start, i)
            start = None
    out = np.zeros(len(keep), dtype=bool)
    out[best_range[0]:best_range[1]] = True
    return out


def fit_range_mask(sizes: np.ndarray, counts: np.ndarray, shape: tuple[int, int], *, min_size: int = MIN_SIZE,
                   min_boxes: int = MIN_BOXES, saturation: float = SATURATION) -> tuple[np.ndarray, str]:
    """Which sizes enter the least-squares fit, and a note when the range had to be stretched.

    Keeps sizes >= ``min_size`` with >= ``min_boxes`` boxes and at most ``saturation`` of the image's boxes
    occupied. A set that is already saturated at the smallest kept size fills the image at every resolved scale
    (a noisy region): its counts are then all kept, and the slope is 2. If that leaves too short a range (fewer
    than ``MIN_FIT_POINTS`` sizes or less than an octave), the thresholds relax step by step and the note says so.
    """
    h, w = shape
    occupancy = counts * sizes.astype(np.float64) ** 2 / float(h * w)
    attempts = [(min_size, min_boxes), (min_size, min_boxes // 2), (1, min_boxes // 2), (1, 16), (1, 2)]
    last = np.zeros(len(sizes), dtype=bool)
    for i, (lo, nmin) in enumerate(attempts):
        base = (sizes >= lo) & (counts >= nmin)
        if not base.any():
            continue
        first = int(np.argmax(base))
        keep = base if occupancy[first] > saturation else base & (occupancy <= saturation)
        run = _longest_run(keep)
        if run.sum() >= 2:
            last = run
        if run.sum() >= MIN_FIT_POINTS and sizes[run].max() >= 2 ** MIN_FIT_OCTAVES * sizes[run].min():
            note = "" if i < 2 else (f"short scaling range: the fit needed box sizes from {lo} px and as few as "
                                     f"{nmin} boxes; the estimate is rough")
            return run, note
    if last.sum() >= 2:
        return last, "very short scaling range: fewer than 4 usable box sizes; the estimate is rough"
    return last, "boundary too small to measure: fewer than 2 box sizes hold 2 or more boxes"


def _paper_estimate(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """porespy's boxcount (default 10 bins) and the median of its local slopes, as the authors computed it.

    Sizes where no box qualifies (N = 0) give infinite slopes in porespy; the median here skips them.
    """
    if min(mask.shape) <= PAPER_MIN_SIZE:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0), float("nan")
    sizes = paper_sizes(mask.shape)
    counts = box_counts(mask, sizes, rule="partial")
    slopes = _local_slopes(sizes, counts)
    finite = slopes[np.isfinite(slopes)]
    return sizes, counts, slopes, (float(np.median(finite)) if len(finite) else float("nan"))


def box_counting_dimension(measure_or_mask: np.ndarray, *, sizes: Sequence[int] | None = None,
                           min_size: int = MIN_SIZE, min_boxes: int = MIN_BOXES,
                           saturation: float = SATURATION) -> DimensionEstimate:
    """Box-counting dimension of the sign-change boundary of a measure (or of a boolean set given directly).

    A float array is a convergence measure (negative = converged); its boundary is :func:`edge_mask`. A boolean
    array is taken as the set to measure. ``sizes`` overrides the accurate estimator's box sizes (default:
    :func:`default_sizes`, four per octave from 1 px to half the image). Degenerate input (no boundary, too
    small an image) gives ``dimension = nan`` with ``reason`` saying why, never an exception.
    """
    raw = np.asarray(measure_or_mask)
    mask = _as_mask(raw)
    shape = (int(mask.shape[0]), int(mask.shape[1]))
    edge_pixels = int(mask.sum())
    nan = float("nan")
    empty_i = np.zeros(0, dtype=np.int64)

    def degenerate(reason: str) -> DimensionEstimate:
        return DimensionEstimate(nan, (nan, nan), nan, empty_i, np.zeros(0), None, nan, empty_i, empty_i,
                                 np.zeros(0), shape, edge_pixels, reason)

    if min(shape) < 2:
        return degenerate(f"image too small: the edge mask is {shape[0]}x{shape[1]} pixels")
    if edge_pixels == 0:
        if raw.dtype == bool:
            return degenerate("no boundary: the mask is empty")
        with np.errstate(invalid="ignore"):
            if np.all(raw < 0):
                return degenerate("no boundary: every pixel converged")
            if np.all(raw > 0):
                return degenerate("no boundary: every pixel diverged")
        return degenerate("no boundary: the measure never changes sign between neighbouring pixels")

    s = (default_sizes(shape) if sizes is None
         else np.asarray(sorted({int(v) for v in sizes}), dtype=np.int64))
    n = covering_counts(mask, s)
    fit, reason = fit_range_mask(s, n, shape, min_size=min_size, min_boxes=min_boxes, saturation=saturation)
    if fit.sum() >= 2:
        x = np.log(s[fit].astype(np.float64))
        y = np.log(n[fit])
        design = np.vstack([np.ones_like(x), -x]).T
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        intercept, dim = float(coef[0]), float(coef[1])
        dof = len(x) - 2
        half = nan
        if dof > 0:
            resid = y - design @ coef
            se = math.sqrt(float(resid @ resid) / dof / float(((x - x.mean()) ** 2).sum()))
            half = _t_quantile(dof) * se
        interval = (dim - half, dim + half)
        fit_range = (int(s[fit].min()), int(s[fit].max()))
    else:
        dim, intercept, interval, fit_range = nan, nan, (nan, nan), None

    ps, pc, slopes, paper = _paper_estimate(mask)
    if not len(ps) and not reason:
        reason = f"image of {PAPER_MIN_SIZE} px or less: no estimate by the paper's method"
    return DimensionEstimate(dim, interval, paper, s, n, fit_range, intercept, ps, pc, slopes, shape,
                             edge_pixels, reason)


@dataclasses.dataclass(frozen=True)
class CombinedEstimate:
    """One dimension from several images (e.g. the zoom levels visited), both estimators.

    The least-squares estimate fits a single slope with one intercept per image (each image covers a different
    stretch of the boundary, so has its own number of boxes), over each image's own fit range. The paper's
    estimate is the median of all images' local slopes, as the authors pooled their zoom sequences.
    """

    dimension: float
    interval: tuple[float, float]
    paper_dimension: float
    estimates: tuple[DimensionEstimate, ...]
    n_images: int  # images that entered the least-squares fit
    reason: str = ""

    def to_dict(self) -> dict:
        return {
            "dimension": _nan_or(self.dimension),
            "interval": [_nan_or(self.interval[0]), _nan_or(self.interval[1])],
            "paper_dimension": _nan_or(self.paper_dimension),
            "n_images": int(self.n_images),
            "reason": self.reason,
            "images": [e.to_dict() for e in self.estimates],
        }


def combined_dimension(items: Sequence[np.ndarray | DimensionEstimate | dict], **kwargs) -> CombinedEstimate:
    """Pool several images (measures, masks, :class:`DimensionEstimate` or their ``to_dict``) into one estimate.

    ``kwargs`` go to :func:`box_counting_dimension` for the items that still need measuring.
    """
    ests = []
    for it in items:
        if isinstance(it, DimensionEstimate):
            ests.append(it)
        elif isinstance(it, dict):
            ests.append(DimensionEstimate.from_dict(it))
        else:
            ests.append(box_counting_dimension(it, **kwargs))
    ests = tuple(ests)
    nan = float("nan")
    slopes = [e.paper_slopes[np.isfinite(e.paper_slopes)] for e in ests]
    pooled = np.concatenate(slopes) if slopes else np.zeros(0)
    paper = float(np.median(pooled)) if len(pooled) else nan
    xs, ys, groups = [], [], []
    for e in ests:
        if not math.isfinite(e.dimension):
            continue
        fit = e.in_fit
        xs.append(np.log(e.sizes[fit].astype(np.float64)))
        ys.append(np.log(e.counts[fit].astype(np.float64)))
        groups.append(np.full(int(fit.sum()), len(groups)))
    k = len(xs)
    if k == 0:
        why = "; ".join(sorted({e.reason for e in ests if e.reason})) or "no images given"
        return CombinedEstimate(nan, (nan, nan), paper, ests, 0, f"no image has a measurable boundary ({why})")
    x, y, g = np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)
    design = np.zeros((len(x), k + 1))
    design[np.arange(len(x)), g] = 1.0
    design[:, k] = -x
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    dim = float(coef[k])
    dof = len(x) - (k + 1)
    half = nan
    if dof > 0:
        resid = y - design @ coef
        cov = float(resid @ resid) / dof * np.linalg.pinv(design.T @ design)
        half = _t_quantile(dof) * math.sqrt(max(float(cov[k, k]), 0.0))
    notes = sorted({e.reason for e in ests if e.reason})
    return CombinedEstimate(dim, (dim - half, dim + half), paper, ests, k, "; ".join(notes))
