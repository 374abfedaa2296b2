"""Figure-ready exports of trainability maps, the way the paper shows them: axes in the hyperparameters' units,
a colour bar of the measure, the view's coordinates in the title, a zoom path of panels with boxes.

The page's PNG is the bare pixel array; a paper needs axes, a scale and a stated view. Colours come from
``colours.render_measure`` (Spectral reversed, per-sign ``cdf`` equalisation), so the figure, the page and the
stored PNG show one picture. Only matplotlib's object API is used (``Figure`` + ``FigureCanvasAgg``, never
pyplot): pages render from threads, and pyplot's global figure registry is neither thread-safe nor freed.

Example::

    from engine.trainability import figures, presets, results
    spec = presets.preset("tanh", resolution=64)
    measure = results.load(result_dir).measure            # or run_grid(spec).measure
    open("map.pdf", "wb").write(figures.map_figure(spec, measure, fmt="pdf", width_in=6, height_in=5))
    png = figures.zoom_path_figure([(spec, measure), (inner_spec, inner_measure)], fmt="png", dpi=200)
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedLocator, MaxNLocator, ScalarFormatter

from engine.trainability.colours import BUFFER, colorize, equalized_values, render_measure
from engine.trainability.spec import ACTIVATIONS, PHASE_SPACES, GridSpec

FORMATS = ("png", "svg", "pdf")
DPI_RANGE = (50, 600)
SIZE_RANGE_IN = (2.0, 40.0)  # inches per side: room for a title, axes and a colour bar; a poster panel < 40
MAX_MEGAPIXELS = 40.0  # the output's pixel count at its DPI: a 4096² paper map fits, gigabytes do not
MAX_LEVELS = 24  # zoom panels in one figure (the paper shows at most a dozen)
MAX_COLUMNS = 12
MAX_TITLE = 200  # characters: a title, not a caption
MIN_PANEL_IN = 1.5  # a zoom panel narrower than this has no room for its axis labels
COLOURBAR_LABEL = "converged ← convergence measure (per-sign cdf) → diverged"
COLOURBAR_SHORT = "converged ← measure → diverged"

# The colour bar's colormap: colorize() sampled finely, so the bar shows exactly the map's colours.
_CMAP = ListedColormap(colorize(np.linspace(-1.0, 1.0, 512)) / 255.0, name="spectral_r_equalised")
# matplotlib's text engine and font cache are shared state; one render at a time keeps threads safe and bounds
# the memory of concurrent exports to one figure.
_RENDER_LOCK = threading.Lock()


# ------------------------------------------------------------------------------------------------ validation
def _check_number(name: str, value: Any, lo: float, hi: float, unit: str = "") -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    v = float(value) if ok else math.nan
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{name}: must be in {lo:g}..{hi:g}{unit}, got {value!r}")
    return v


def check_output(fmt: Any, width_in: Any, height_in: Any, dpi: Any) -> tuple[str, float, float, float]:
    """The output options, checked: a bad format, size or DPI, or more than :data:`MAX_MEGAPIXELS` at that DPI,
    is a ``ValueError`` naming the field, before any figure is allocated."""
    if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        raise ValueError(f"fmt: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    w = _check_number("width_in", width_in, *SIZE_RANGE_IN, " inches")
    h = _check_number("height_in", height_in, *SIZE_RANGE_IN, " inches")
    d = _check_number("dpi", dpi, *DPI_RANGE)
    mp = (w * d) * (h * d) / 1e6
    if mp > MAX_MEGAPIXELS:
        raise ValueError(f"size: must be at most {MAX_MEGAPIXELS:g} megapixels (width_in × height_in × dpi²), "
                         f"got {w:g} × {h:g} in at {d:g} dpi = {mp:.1f} megapixels; lower the size or the dpi")
    return fmt.lower(), w, h, d


def _check_title(title: Any) -> str | None:
    if title is not None and not (isinstance(title, str) and len(title) <= MAX_TITLE):
        shown = f"{len(title)} characters" if isinstance(title, str) else type(title).__name__
        raise ValueError(f"title: must be text of at most {MAX_TITLE} characters or None, got {shown}")
    return title


def _check_level(where: str, spec: Any, measure: Any) -> tuple[GridSpec, np.ndarray]:
    if not isinstance(spec, GridSpec):
        raise ValueError(f"{where}spec: must be a GridSpec, got {type(spec).__name__}")
    try:
        m = np.asarray(measure, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}measure: must be a numeric array, got {type(measure).__name__}") from None
    if m.shape != spec.shape:
        raise ValueError(f"{where}measure: must have the spec's shape (n_y, n_x) = {spec.shape}, got {m.shape}")
    return spec, m


# ------------------------------------------------------------------------------------------------ text
def _decimals(span: float) -> int:
    """Decimals that tell ends of a range ``span`` wide apart to a tenth of it (deep zooms need many)."""
    if not span > 0:
        return 3
    return max(0, min(17, math.ceil(-math.log10(span / 10.0))))


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}".replace("-", "−")


def _range_text(lo: float, hi: float) -> str:
    d = _decimals(hi - lo)
    return f"[{_fmt(lo, d)}, {_fmt(hi, d)}]"


def _experiment_parts(spec: GridSpec) -> list[str]:
    batch = "full batch" if spec.batch_size is None else f"batch {spec.batch_size}"
    extra = ["offset every step"] if spec.offset_every_step else []
    return [ACTIVATIONS[spec.activation].title, f"width {spec.width}", f"N = {spec.n_samples}", batch,
            f"{spec.steps} steps", *extra]


def _view_parts(spec: GridSpec) -> list[str]:
    ps = PHASE_SPACES[spec.phase_space]
    return [f"log₁₀ {ps.x_short} ∈ {_range_text(*spec.x_range)}",
            f"log₁₀ {ps.y_short} ∈ {_range_text(*spec.y_range)}", f"{spec.n_x} × {spec.n_y} px", spec.dtype]


def experiment_text(spec: GridSpec) -> str:
    """The science of a map in one line: activation, width, data, batch, steps (what a caption must state)."""
    return ", ".join(_experiment_parts(spec))


def view_text(spec: GridSpec) -> str:
    """The view's coordinates (log10 units, cell centres), resolution and precision, as the title states them."""
    return ", ".join(_view_parts(spec))


def _wrap(parts: Sequence[str], max_chars: int) -> str:
    """Comma-separated parts on as few lines as fit ``max_chars`` each, never splitting a part (a range such as
    ``[−3.0, 6.0]`` stays whole)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 2 + len(part) <= max_chars:
            lines[-1] += ", " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def _split_range(part: str, max_chars: int) -> list[str]:
    """``"log₁₀ lr ∈ [a, b]"`` on one, two or three lines so a narrow panel's title fits above its axes."""
    if len(part) <= max_chars:
        return [part]
    name, rng = part.split(" ∈ ", 1)
    return [f"{name} ∈", rng] if len(rng) <= max_chars else [f"{name} ∈", *rng.replace(", ", ",\n").split("\n")]


def _font_size(width_in: float, height_in: float) -> float:
    """Points for axis labels: 10-11 pt from 5 inches wide, smaller in a narrow column figure, never under 6."""
    return float(min(11.0, max(6.0, 2.0 * min(width_in, 1.25 * height_in))))


def _chars(width_in: float, points: float) -> int:
    return max(12, int(width_in * 72 / (0.56 * points)))


def _shrink_to_fit(fig: Figure, rounds: int = 4) -> None:
    """Shrink any text that still leaves the figure (long deep-zoom coordinates, a tiny size) until it fits: a
    figure for a paper must not cut a label. Each round lays the figure out again."""
    for _ in range(rounds):
        fig.draw_without_rendering()
        r = fig.canvas.get_renderer()
        cut = [t for t in _drawn_texts(fig) if not _inside(t.get_window_extent(r), fig.bbox)]
        if not cut:
            return
        for t in cut:
            t.set_fontsize(max(4.0, t.get_fontsize() * 0.85))


def _drawn_texts(fig: Figure) -> list[Any]:
    """The texts a render shows: titles, labels and the tick labels inside each axis's view (matplotlib keeps
    tick objects beyond the view that are never drawn)."""
    out = list(fig.texts) + ([fig._suptitle] if fig._suptitle is not None else [])
    axes = [a for ax in fig.axes for a in (ax, *ax.child_axes)]
    for ax in axes:
        out += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            out.append(axis.label)
            lo, hi = sorted(axis.get_view_interval())
            eps = (hi - lo) * 1e-9
            out += [lab for tick in axis.get_major_ticks() if lo - eps <= tick.get_loc() <= hi + eps
                    for lab in (tick.label1, tick.label2)]
    return [t for t in out if t.get_visible() and t.get_text()]


def _inside(bb: Any, box: Any, tol: float = 1.0) -> bool:
    return bb.x0 >= box.x0 - tol and bb.y0 >= box.y0 - tol and bb.x1 <= box.x1 + tol and bb.y1 <= box.y1 + tol


# ------------------------------------------------------------------------------------------------ drawing
def cell_extent(spec: GridSpec) -> tuple[float, float, float, float]:
    """``(left, right, bottom, top)`` of the map's cells: pixel ``(i, j)`` is the cell centred on
    ``(x_values[j], y_values[i])``, so the outer cells reach half a spacing past the view's range."""
    (x0, x1), (y0, y1) = spec.x_range, spec.y_range
    dx, dy = (x1 - x0) / (spec.n_x - 1), (y1 - y0) / (spec.n_y - 1)
    return (x0 - dx / 2, x1 + dx / 2, y0 - dy / 2, y1 + dy / 2)


def _style_axis(axis: Any, span: float) -> None:
    """Round ticks whose labels differ at any depth of zoom, with no offset text that a reader could miss."""
    axis.set_major_locator(MaxNLocator(nbins=5 if span > 1e-4 else 3, steps=[1, 2, 2.5, 5, 10]))
    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    axis.set_major_formatter(fmt)


def _draw_map(ax: Any, spec: GridSpec, measure: np.ndarray, vector: bool, pixels: float, fs: float) -> Any:
    """The map as exact cells on ``ax``, y growing upward as on the page (row 0 of ``measure`` at the bottom).

    Raster output resamples with nearest neighbour (each cell a block of one colour); vector output embeds the
    cells unresampled (``interpolation="none"``, drawn pixelated by viewers) unless there are more cells than
    the output has pixels, when the nearest-neighbour raster is embedded instead to bound the file's size.
    """
    rgb = render_measure(measure)  # top row = largest y, hence origin="upper"
    interp = "none" if vector and measure.size <= pixels else "nearest"
    img = ax.imshow(rgb, extent=cell_extent(spec), origin="upper", interpolation=interp, aspect="auto",
                    resample=False)
    ax.set_box_aspect(spec.n_y / spec.n_x)  # square cells, whatever the view's spans in log units
    ps = PHASE_SPACES[spec.phase_space]
    ax.set_xlabel(ps.x_label, fontsize=fs)
    ax.set_ylabel(ps.y_label, fontsize=fs)
    ax.tick_params(labelsize=0.85 * fs)
    l, r, b, t = cell_extent(spec)
    ax.set_xlim(l, r)
    ax.set_ylim(b, t)
    _style_axis(ax.xaxis, r - l)
    _style_axis(ax.yaxis, t - b)
    if r - l < 1e-4:
        for lab in ax.get_xticklabels():
            lab.set_rotation(30)
            lab.set_horizontalalignment("right")
    return img


def colourbar_ticks(measure: np.ndarray) -> tuple[list[float], list[str]]:
    """Positions on the equalised scale [-1, 1] and the measure values found there.

    Equalisation is monotone within each sign, so the measure at an equalised position is read off the sorted
    pixels; a side with no pixels gets no ticks, equal values one tick, and labels carry the digits that tell
    them apart (the diverged side often spans 1.0001..1.2). Zero, the trainability boundary, is always marked.
    """
    m = np.asarray(measure, dtype=np.float64)
    eq = equalized_values(m)
    keep = np.isfinite(m) & np.isfinite(eq)
    m, eq = m[keep], eq[keep]
    mid = (1.0 + BUFFER) / 2.0
    pos: list[float] = [0.0]
    labels: list[str] = ["0"]
    for side, ticks in ((m < 0, (-1.0, -mid, -BUFFER)), (m >= 0, (BUFFER, mid, 1.0))):
        if not side.any():
            continue
        order = np.argsort(eq[side], kind="stable")
        e_sorted, m_sorted = eq[side][order], m[side][order]
        found: dict[float, float] = {}  # value -> first position showing it
        for t in ticks:
            found.setdefault(float(np.interp(t, e_sorted, m_sorted)), t)
        values = list(found)
        digits = next((d for d in range(3, 10) if len({f"{v:.{d}g}" for v in values}) == len(values)), 10)
        pos += list(found.values())
        labels += [f"{v:.{digits}g}".replace("-", "−") for v in values]
    order = np.argsort(pos)
    return [pos[i] for i in order], [labels[i] for i in order]


def _colourbar(fig: Figure, ax: Any, measure: np.ndarray, fs: float) -> Any:
    """The measure's colour bar on the equalised scale, ticks labelled with measure values, ends named."""
    cax = ax.inset_axes((1.04, 0.0, 0.045, 1.0))  # exactly the map's height, whatever its box aspect
    cb = fig.colorbar(_scalar_mappable(), cax=cax)
    pos, labels = colourbar_ticks(measure)
    cb.ax.yaxis.set_major_locator(FixedLocator(pos))
    cb.ax.set_yticklabels(labels)
    cb.ax.tick_params(labelsize=0.8 * fs)
    # read bottom to top along the bar, so each word sits at its own end; the long form where it may fit (a
    # guess from the height; _fit_colourbar_label checks it once the bar is laid out)
    may_fit = len(COLOURBAR_LABEL) * 0.5 * 0.8 * fs < (fig.get_figheight() - 1.2) * 72  # less title, x label
    cb.set_label(COLOURBAR_LABEL if may_fit else COLOURBAR_SHORT, fontsize=0.8 * fs)
    return cb


def _fit_colourbar_label(fig: Figure, cb: Any) -> None:
    """The short label where the long one is taller than the laid-out bar (known only after a layout)."""
    fig.draw_without_rendering()
    label = cb.ax.yaxis.label
    if label.get_window_extent(fig.canvas.get_renderer()).height > cb.ax.get_window_extent().height:
        label.set_text(COLOURBAR_SHORT)


def _scalar_mappable() -> Any:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=Normalize(-1.0, 1.0), cmap=_CMAP)


def _new_figure(width_in: float, height_in: float, dpi: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)  # no pyplot: the figure owns its canvas and is freed with it
    return fig


def _build_map_figure(spec: GridSpec, measure: np.ndarray, *, width_in: float, height_in: float, dpi: float,
                      title: str | None = None, vector: bool = False) -> Figure:
    """The map figure, unsaved (tests read its axes' geometry)."""
    fig = _new_figure(width_in, height_in, dpi)
    fs = _font_size(width_in, height_in)
    ax = fig.add_subplot()
    _draw_map(ax, spec, measure, vector, (width_in * dpi) * (height_in * dpi), fs)
    cb = _colourbar(fig, ax, measure, fs)
    n = _chars(width_in, fs)
    head = _wrap(_experiment_parts(spec), n) if title is None else title
    fig.suptitle(f"{head}\n{_wrap(_view_parts(spec), n)}", fontsize=fs)
    _fit_colourbar_label(fig, cb)
    _shrink_to_fit(fig)
    return fig


def _zoom_layout(levels: Sequence[tuple[GridSpec, np.ndarray]], width_in: float,
                 columns: int | None) -> tuple[int, int, float]:
    """Columns, rows and the height in inches: square cells, room for each panel's title and labels."""
    ncols = min(len(levels), columns or 4)
    nrows = math.ceil(len(levels) / ncols)
    aspect = max(s.n_y / s.n_x for s, _ in levels)
    return ncols, nrows, max(SIZE_RANGE_IN[0], nrows * (width_in / ncols * aspect + 0.75) + 0.6)


def _build_zoom_path_figure(levels: Sequence[tuple[GridSpec, np.ndarray]], *, width_in: float, dpi: float,
                            columns: int | None = None, title: str | None = None,
                            vector: bool = False) -> tuple[Figure, float]:
    """The zoom-path figure, unsaved, and its height in inches (tests count its boxes)."""
    n = len(levels)
    ncols, nrows, height_in = _zoom_layout(levels, width_in, columns)
    fig = _new_figure(width_in, height_in, dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    pixels = (width_in * dpi) * (height_in * dpi) / n
    fs = _font_size(width_in / ncols * 1.6, width_in / ncols * 1.6)  # a panel reads at a smaller size
    for k, (spec, measure) in enumerate(levels):
        ax = axes[k // ncols][k % ncols]
        _draw_map(ax, spec, measure, vector, pixels, 0.9 * fs)
        n_chars = _chars(width_in / ncols - 0.6, 0.9 * fs)  # the axes' width, less its tick labels
        lines = [f"level {k}", *(ln for p in _view_parts(spec)[:2] for ln in _split_range(p, n_chars))]
        ax.set_title("\n".join(lines), fontsize=0.9 * fs, loc="left")
        if k + 1 < n:
            l, r, b, t = cell_extent(levels[k + 1][0])
            box = Rectangle((l, b), r - l, t - b, fill=False, edgecolor="black", linewidth=1.5,
                            gid=f"zoom-box-{k}")
            halo = Rectangle((l, b), r - l, t - b, fill=False, edgecolor="white", linewidth=3.0)
            for patch in (halo, box):  # white under black: the box reads on both light and dark cells
                patch.set_in_layout(False)  # clipped to the axes: never a reason to move the layout
                ax.add_patch(patch)
            (al, ar), (ab, at) = ax.get_xlim(), ax.get_ylim()
            if min((r - l) / (ar - al), (t - b) / (at - ab)) < 0.03:  # a box too small to see: ring its centre
                ax.plot([(l + r) / 2], [(b + t) / 2], marker="o", markersize=9, markerfacecolor="none",
                        markeredgecolor="black", markeredgewidth=1.5, gid=f"zoom-mark-{k}", in_layout=False)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_axis_off()
    head = _experiment_parts(levels[0][0]) if title is None else [title]
    parts = [*head, "colours equalised per panel", "blue = converged", "red = diverged"]
    fig.suptitle(_wrap(parts, _chars(width_in, fs)), fontsize=fs)
    _shrink_to_fit(fig)
    return fig, height_in


def _save(fig: Figure, fmt: str, dpi: float) -> bytes:
    """The figure's bytes at exactly its size (no tight bbox: width_in × dpi pixels), without timestamps so
    equal inputs give equal files."""
    meta = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta[fmt])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ public API
def map_figure(spec: GridSpec, measure: Any, *, fmt: str = "png", width_in: float = 6.5, height_in: float = 5.5,
               dpi: float = 200, title: str | None = None) -> bytes:
    """The map of ``measure`` (shape ``spec.shape``, row i = ``spec.y_values[i]``) as a PNG, SVG or PDF figure:
    axes in log10 of the phase space's hyperparameters, exact cells, a colour bar of the measure, and the
    experiment and view in the title (``title`` replaces the experiment line; the view is always stated).

    A PNG is ``round(width_in * dpi)`` × ``round(height_in * dpi)`` pixels. ``ValueError`` for a bad format,
    size or DPI, more than :data:`MAX_MEGAPIXELS`, or a measure that does not fit the spec.
    """
    fmt, w, h, d = check_output(fmt, width_in, height_in, dpi)
    spec, m = _check_level("", spec, measure)
    title = _check_title(title)
    with _RENDER_LOCK:
        fig = _build_map_figure(spec, m, width_in=w, height_in=h, dpi=d, title=title, vector=fmt != "png")
        return _save(fig, fmt, d)


def zoom_path_figure(levels: Sequence[tuple[GridSpec, Any]], *, fmt: str = "png", width_in: float = 12.0,
                     dpi: float = 200, columns: int | None = None, title: str | None = None) -> bytes:
    """The zoom path as panels side by side (wrapping after ``columns``, default 4, per row), outermost first,
    each with the next level's view drawn as a box, like the paper's zoom panels.

    ``levels`` is ``[(spec, measure), ...]`` from the outermost view to the innermost. The height follows from
    the width and the number of rows. Each panel is equalised on its own, as the paper's panels are, so there
    is no shared colour bar. ``ValueError`` as for :func:`map_figure`, for no levels or more than
    :data:`MAX_LEVELS`, or a bad ``columns``.
    """
    fmt, w, _, d = check_output(fmt, width_in, SIZE_RANGE_IN[0], dpi)
    try:
        items = list(levels)
    except TypeError:
        raise ValueError(f"levels: must be a list of (spec, measure) pairs, got {type(levels).__name__}") from None
    if not 1 <= len(items) <= MAX_LEVELS:
        raise ValueError(f"levels: must hold 1..{MAX_LEVELS} (spec, measure) pairs, got {len(items)}")
    checked = []
    for k, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"levels[{k}]: must be a (spec, measure) pair, got {type(item).__name__}")
        checked.append(_check_level(f"levels[{k}] ", *item))
    title = _check_title(title)
    if columns is not None:
        _check_number("columns", columns, 1, MAX_COLUMNS)
        if not isinstance(columns, (int, np.integer)):
            raise ValueError(f"columns: must be an integer in 1..{MAX_COLUMNS}, got {columns!r}")
        columns = int(columns)
    ncols, _, h = _zoom_layout(checked, w, columns)
    if w / ncols < MIN_PANEL_IN:
        raise ValueError(f"width_in: {ncols} columns need at least {ncols * MIN_PANEL_IN:g} inches "
                         f"({MIN_PANEL_IN:g} per panel), got {w:g}; widen the figure or pass fewer columns")
    if h > SIZE_RANGE_IN[1]:
        raise ValueError(f"levels: {len(checked)} panels at width {w:g} in need {h:.1f} in of height, over "
                         f"{SIZE_RANGE_IN[1]:g}; use more columns or a smaller width")
    check_output(fmt, w, h, d)  # the pixel bound, now that the height is known
    with _RENDER_LOCK:
        fig, _ = _build_zoom_path_figure(checked, width_in=w, dpi=d, columns=columns, title=title,
                                         vector=fmt != "png")
        return _save(fig, fmt, d)
