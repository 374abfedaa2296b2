"""Figures for a paper, beside the map: the current map as PNG, SVG or PDF with axes in the hyperparameters' units,
a colour bar of the measure and the view in the title, at a chosen size and DPI; and the zoom path of the visited
levels whose maps are stored, side by side, each with the next level's box (``engine.trainability.figures``).

A figure takes a second or more to draw, so nothing is drawn while the page runs: each download button holds a
function that draws its file when clicked (Streamlit calls it then, on a thread of its own), remembered per
(result key, format, size, DPI) so a second click is instant.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import streamlit as st

from engine.trainability import GridSpec, figures
from ui.damaged import READ_ERRORS, damaged_notice
from ui.downloads import download_row
from ui.trainability import compute, session

MIME = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}
KINDS = {"png": "PNG", "svg": "SVG (vector)", "pdf": "PDF (vector)"}
CACHE_ENTRIES = 12  # figures kept for a second click (each a few hundred kB; a 40-megapixel PNG a few MB)


@dataclass(frozen=True)
class Option:
    """One figure option: its widget's label, range (figures.py's, which its functions check), default, step and
    help."""

    label: str
    range: tuple[float, float]
    default: float
    step: float
    help: str
    integer: bool = False


OPTIONS = {
    "width_in": Option("Width (in)", figures.SIZE_RANGE_IN, 6.5, 0.5,
                       "Width of the map figure in inches (a journal column is about 3.5, a page 7)."),
    "height_in": Option("Height (in)", figures.SIZE_RANGE_IN, 5.5, 0.5,
                        "Height of the map figure in inches."),
    "dpi": Option("DPI", figures.DPI_RANGE, 200, 50,
                  "Dots per inch: the PNG's pixels are size × DPI; SVG and PDF are vector (the map's cells are "
                  "embedded as they are), the DPI only sets their raster fallback.", integer=True),
    "path_width_in": Option("Zoom-path width (in)", figures.SIZE_RANGE_IN, 12.0, 0.5,
                            "Width of the zoom-path figure in inches; its height follows from the panels."),
}

_cache: OrderedDict[tuple, bytes] = OrderedDict()
_cache_lock = threading.Lock()


def _remembered(key: tuple, draw: Callable[[], bytes]) -> bytes:
    """``draw()``, or its bytes from an earlier click with the same key (the newest :data:`CACHE_ENTRIES`)."""
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = draw()
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return data


def map_bytes(result_key: str, spec: GridSpec, measure, fmt: str, width_in: float, height_in: float,
              dpi: float) -> bytes:
    """The map figure of a stored result (``result_key``: its job id, the store key of its spec)."""
    return _remembered(("map", result_key, fmt, width_in, height_in, dpi), lambda: figures.map_figure(
        spec, measure, fmt=fmt, width_in=width_in, height_in=height_in, dpi=dpi))


def zoom_path_bytes(result_keys: Sequence[str], levels: Sequence[tuple[GridSpec, object]], fmt: str,
                    width_in: float, dpi: float, title: str | None = None) -> bytes:
    """The zoom-path figure of stored results, outermost first."""
    return _remembered(("path", tuple(result_keys), fmt, width_in, dpi, title), lambda: figures.zoom_path_figure(
        list(levels), fmt=fmt, width_in=width_in, dpi=dpi, title=title))


def _input(name: str, key: str, col=None) -> float:
    """A number input over an :data:`OPTIONS` entry's range, starting at its default."""
    o = OPTIONS[name]
    cast = int if o.integer else float
    kwargs = {} if key in st.session_state else {"value": cast(o.default)}
    return (col or st).number_input(o.label, cast(o.range[0]), cast(o.range[1]), step=cast(o.step), key=key,
                                    help=o.help, **kwargs)


def _buttons(stem: str, make: Callable[[str], bytes], key: str, what: str) -> None:
    """PNG, SVG and PDF download buttons whose files are drawn by ``make(fmt)`` only when clicked."""
    files = {f"{stem}.{fmt}": (functools.partial(make, fmt), MIME[fmt]) for fmt in figures.FORMATS}
    labels = {f"{stem}.{fmt}": f"{what} · {KINDS[fmt]}" for fmt in figures.FORMATS}
    download_row(files, key=key, labels=labels, columns=1, icon=":material/download:")


def _checked(fmt: str, w: float, h: float, dpi: float) -> bool:
    """Options the figure functions accept (say why not instead of offering a download that would fail)."""
    try:
        figures.check_output(fmt, w, h, dpi)
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return False
    return True


def _map_figure(state: dict, jobs: compute.ViewJobs, dpi: float) -> None:
    shown = jobs.shown
    cols = st.columns(2)
    w, h = _input("width_in", "tx_fig_w", cols[0]), _input("height_in", "tx_fig_h", cols[1])
    if not _checked("png", w, h, dpi):
        return
    spec, measure = shown.spec, shown.measure
    st.caption(f"This view's {spec.n_x} × {spec.n_y} map: PNG of {round(w * dpi)} × {round(h * dpi)} px.")
    stem = f"trainability-{state['preset']}-L{state['level']}-{spec.n_x}px-figure"
    _buttons(stem, lambda fmt: map_bytes(jobs.shown_id, spec, measure, fmt, w, h, dpi), "tx_fig_map", "Map")


def stored_levels(state: dict) -> tuple[list[tuple[int, str, GridSpec, object]], list[int]]:
    """The visited levels whose full-resolution maps are stored, as (level, result key, spec, measure), and the
    levels that are not (never computed, still computing, or damaged: each damaged one is said with a Recompute
    button)."""
    stored, missing = [], []
    for lvl, view in enumerate(state["path"]):
        spec = session.view_spec(state, view)[0]
        key = compute.grid_id(spec)
        try:
            result = compute.result_of(spec)
        except READ_ERRORS as exc:
            damaged_notice(exc, key=f"tx_fig_recompute_{lvl}", job_id=key, kind="grid", spec=spec,
                           label=f"Level {lvl}")
            result = None
        if result is None:
            missing.append(lvl)
        else:
            stored.append((lvl, key, result.spec, result.measure))
    return stored, missing


def _levels_text(levels: Sequence[int]) -> str:
    return ("level " if len(levels) == 1 else "levels ") + ", ".join(str(v) for v in levels)


def _zoom_path_figure(state: dict, dpi: float) -> None:
    stored, missing = stored_levels(state)
    if len(stored) > figures.MAX_LEVELS:  # the deepest levels: where the zoom went
        missing = sorted(missing + [lvl for lvl, *_ in stored[: -figures.MAX_LEVELS]])
        stored = stored[-figures.MAX_LEVELS:]
    shown = [lvl for lvl, *_ in stored]
    skipped = f" Left out: {_levels_text(missing)} (not computed yet: visit a level to compute it)." if missing else ""
    if len(stored) < 2:
        st.caption("A zoom-path figure needs two computed levels: click the map to zoom in." + skipped)
        return
    w = _input("path_width_in", "tx_fig_pw")
    levels = [(spec, measure) for _, _, spec, measure in stored]
    ncols, _, h = figures._zoom_layout(levels, w, None)  # the figure's own layout: its height, checked below
    if w / ncols < figures.MIN_PANEL_IN:
        st.error(f"Zoom-path width: {ncols} panels need at least {ncols * figures.MIN_PANEL_IN:g} inches.",
                 icon=":material/error:")
        return
    if h > figures.SIZE_RANGE_IN[1]:
        st.error(f"The zoom path would be {h:.1f} inches tall, over {figures.SIZE_RANGE_IN[1]:g}: make it "
                 "narrower.", icon=":material/error:")
        return
    if not _checked("png", w, h, dpi):
        return
    # the panels are numbered from 0 in the figure: when levels are left out, the title names the real ones
    title = f"{figures.experiment_text(levels[0][0])}; zoom {_levels_text(shown)}" if missing else None
    st.caption(f"{_levels_text(shown).capitalize()} side by side, each with the next one's box; "
               f"PNG of {round(w * dpi)} × {round(h * dpi)} px.{skipped}")
    stem = f"trainability-{state['preset']}-zoom-path-L{shown[0]}-L{shown[-1]}"
    keys = [key for _, key, _, _ in stored]
    _buttons(stem, lambda fmt: zoom_path_bytes(keys, levels, fmt, w, dpi, title), "tx_fig_path", "Zoom path")


def figure_section(state: dict, jobs: compute.ViewJobs) -> None:
    """"Figure for a paper": size and DPI, then downloads of the map and of the zoom path (drawn on click)."""
    with st.expander("Figure for a paper", icon=":material/picture_as_pdf:"):
        if jobs.shown is None:
            st.caption("The figures are ready once this view is computed.")
            return
        dpi = _input("dpi", "tx_fig_dpi")
        st.markdown("**The map**")
        _map_figure(state, jobs, dpi)
        st.markdown("**The zoom path**")
        _zoom_path_figure(state, dpi)
