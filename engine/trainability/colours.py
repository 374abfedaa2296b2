"""The paper's colouring of a trainability map, so the PNG, the page's heatmap and the video show one picture.

The measure is histogram-equalised *separately for each sign* (the authors' ``cdf_img``): converged pixels over
[-1, -0.25], diverged over [0.25, 1], keeping a gap at zero so the boundary stays a visible jump; then drawn with
Spectral reversed. The raw measure spans orders of magnitude: drawn linearly, each side would be one flat colour.
"""

from __future__ import annotations

import numpy as np

from engine.png import png_bytes

BUFFER = 0.25  # the gap around zero: converged values end at -0.25, diverged values start at +0.25

# plotly's "Spectral" (plotly.colors.diverging.Spectral), from dark red (0) through pale yellow to purple-blue (1).
# Copied here so the engine does not import plotly; a test checks it still matches plotly's own list.
PLOTLY_SPECTRAL: tuple[str, ...] = (
    "rgb(158,1,66)", "rgb(213,62,79)", "rgb(244,109,67)", "rgb(253,174,97)", "rgb(254,224,139)",
    "rgb(255,255,191)", "rgb(230,245,152)", "rgb(171,221,164)", "rgb(102,194,165)", "rgb(50,136,189)",
    "rgb(94,79,162)",
)


def _parse_rgb(text: str) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in text.strip()[4:-1].split(","))
    return r, g, b


# The colourscale for :func:`equalized_values` over zmin=-1, zmax=1. Drawing the *negated* value with Spectral is
# the same as drawing the value itself with Spectral reversed, so this is Spectral reversed: pass
# ``z=equalized_values(measure), zmin=-1, zmax=1, colorscale=SPECTRAL_COLORSCALE`` (or just ``**heatmap_style(m)``)
# and plotly shows exactly the PNG's colours. Stops are [position in 0..1, "rgb(r,g,b)"], as plotly takes them.
SPECTRAL_COLORSCALE: list[list] = [
    [i / (len(PLOTLY_SPECTRAL) - 1), c] for i, c in enumerate(reversed(PLOTLY_SPECTRAL))
]

_STOPS = np.array([s for s, _ in SPECTRAL_COLORSCALE], dtype=np.float64)
_STOP_RGB = np.array([_parse_rgb(c) for _, c in SPECTRAL_COLORSCALE], dtype=np.float64)


def equalized_values(measure: np.ndarray, reference: np.ndarray | None = None, buffer: float = BUFFER,
                     reference_weights: np.ndarray | None = None) -> np.ndarray:
    """The measure histogram-equalised per sign into [-1, -buffer] (converged) and [buffer, 1] (diverged).

    Order is kept within each sign, so the most negative measure (slowest convergence, next to the boundary)
    maps to -1 and the largest positive one (slowest divergence) to +1. This is the authors' ``cdf_img``
    before its final negation: values sorted, then ``np.interp`` onto ``linspace(-1, -buffer, n_neg) ++
    linspace(buffer, 1, n_nonneg)``, with a zero measure (never produced by the convergence measure) counted as
    diverged as they count it; ties share their average position. ``reference`` (default: the measure itself)
    is the sample whose distribution is equalised, e.g. pixels pooled from two keyframes of a video, and
    ``reference_weights`` weights its values (equal weights reproduce the unweighted map). NaN stays NaN.
    """
    x = np.asarray(measure, dtype=np.float64)
    ref = x if reference is None else np.asarray(reference, dtype=np.float64)
    ref = ref.ravel()
    wts = np.ones(ref.shape) if reference_weights is None else np.asarray(reference_weights, np.float64).ravel()
    if wts.shape != ref.shape:
        raise ValueError(f"reference_weights: must match the reference's {ref.size} values, got {wts.size}")
    keep = np.isfinite(ref) & (wts > 0)
    ref, wts = ref[keep], wts[keep]
    out = np.full(x.shape, np.nan)
    if ref.size == 0:
        return out
    order = np.argsort(ref, kind="stable")
    u, w = ref[order], wts[order]
    finite = np.isfinite(x)
    xf = x[finite]
    y = np.empty(xf.shape)
    for side, lo, hi in ((u < 0, -1.0, -buffer), (u >= 0, buffer, 1.0)):
        mine = (xf < 0) if lo < 0 else (xf >= 0)
        us, ws = u[side], w[side]
        if us.size == 0:  # the reference has no value of this sign: clamp to the band's inner end
            y[mine] = lo if lo > 0 else hi
            continue
        # mid-rank positions, scaled so the smallest value maps to lo and the largest to hi
        s = np.cumsum(ws) - ws / 2.0
        pos = (s - s[0]) / (s[-1] - s[0]) if s[-1] > s[0] else np.zeros_like(s)
        uniq, first, counts = np.unique(us, return_index=True, return_counts=True)
        pos_tie = np.add.reduceat(pos * ws, first) / np.add.reduceat(ws, first)
        y[mine] = lo + (hi - lo) * np.interp(xf[mine], uniq, pos_tie)
    out[finite] = y
    return out


def colorize(values: np.ndarray) -> np.ndarray:
    """Map values in [-1, 1] (as :func:`equalized_values` returns) to uint8 RGB with :data:`SPECTRAL_COLORSCALE`.

    Linear interpolation in RGB between the stops, as plotly does; NaN is drawn mid-grey.
    """
    v = np.asarray(values, dtype=np.float64)
    t = (np.clip(v, -1.0, 1.0) + 1.0) / 2.0
    rgb = np.empty(v.shape + (3,), dtype=np.float64)
    for c in range(3):
        rgb[..., c] = np.interp(t, _STOPS, _STOP_RGB[:, c])
    rgb[~np.isfinite(v)] = 128.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def render_measure(measure: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The paper's picture of a measure: uint8 RGB (n_y, n_x, 3), top row = largest y.

    Input row i is the i-th smallest y (as ``run_grid`` returns it); the image is flipped so that, as in the
    paper's figures, y grows upward.
    """
    m = np.asarray(measure)
    if m.ndim != 2:
        raise ValueError(f"measure: expected a 2-D array (n_y, n_x), got shape {m.shape}")
    return np.ascontiguousarray(colorize(equalized_values(m, reference))[::-1])


def heatmap_style(measure: np.ndarray) -> dict:
    """Keyword arguments for ``plotly.graph_objects.Heatmap`` that reproduce :func:`render_measure`'s colours.

    ``z`` keeps the measure's orientation (row i = i-th y); plotly draws row 0 at the bottom by default, which
    is the same picture as the flipped PNG.
    """
    return {"z": equalized_values(measure), "zmin": -1.0, "zmax": 1.0, "colorscale": SPECTRAL_COLORSCALE}


def measure_png(measure: np.ndarray, scale: int = 1) -> bytes:
    """``png_bytes(render_measure(measure), scale)``: the picture a grid result stores as ``image.png``."""
    return png_bytes(render_measure(measure), scale=scale)


def legend_colours() -> tuple[str, str]:
    """A typical converged and a typical diverged colour (``"rgb(r,g,b)"``), for a legend beside the map."""
    rgb = colorize(np.array([-0.62, 0.62]))
    return tuple(f"rgb({r},{g},{b})" for r, g, b in rgb)  # type: ignore[return-value]
