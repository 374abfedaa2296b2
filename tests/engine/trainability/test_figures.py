"""Figure-ready exports: sizes and formats, the map's colours and orientation against ``render_measure``, the
colour bar's ticks, the zoom path's boxes, no cut text, and the refusals of bad options before any allocation."""

import io
import subprocess
import sys
import threading
import tracemalloc
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from engine.trainability import figures
from engine.trainability.colours import colorize, render_measure
from engine.trainability.presets import preset
from engine.trainability.spec import PHASE_SPACES
from engine.trainability.views import view_of, with_view, zoom_view


def synthetic_measure(n_x: int = 12, n_y: int = 9) -> np.ndarray:
    """Converged below a diagonal, diverged above, |measure| largest next to it; no two pixels tie."""
    y, x = np.mgrid[:n_y, :n_x].astype(float)
    dist = (y - 0.6 * x - 1.3) / 2.0 + 1e-6 * (x + n_x * y)
    return np.where(dist < 0, -500.0, 50.0) / (1.0 + np.abs(dist))


def spec_of(name: str = "tanh", n_x: int = 12, n_y: int = 9, **kw):
    return preset(name, resolution=(n_x, n_y), **kw)


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def rendered(fig, dpi) -> np.ndarray:
    return png_pixels(figures._save(fig, "png", dpi))


def data_to_pixel(ax, x: float, y: float, height: int) -> tuple[int, int]:
    """Row and column of the PNG pixel at data point (x, y) (display origin is bottom-left, PNG's top-left)."""
    px, py = ax.transData.transform((x, y))
    return int(height - py), int(px)


# ------------------------------------------------------------------------------------------ formats and sizes
@pytest.mark.parametrize("w,h,dpi", [(4.0, 3.0, 100), (5.5, 4.5, 72), (3.3, 3.0, 300)])
def test_png_has_the_requested_pixel_size(w, h, dpi):
    data = figures.map_figure(spec_of(), synthetic_measure(), fmt="png", width_in=w, height_in=h, dpi=dpi)
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    assert img.size == (round(w * dpi), round(h * dpi))
    assert img.info.get("dpi") and round(img.info["dpi"][0]) == dpi


@pytest.mark.parametrize("name", ["tanh", "offset"])
def test_svg_parses_and_names_the_hyperparameters_and_view(name):
    spec = spec_of(name)
    data = figures.map_figure(spec, synthetic_measure(), fmt="svg", width_in=6, height_in=5, dpi=100)
    root = ET.fromstring(data)
    assert root.tag.endswith("svg")
    text = data.decode("utf-8")
    ps = PHASE_SPACES[spec.phase_space]
    assert ps.x_label in text and ps.y_label in text and "log₁₀" in ps.x_label
    assert f"log₁₀ {ps.x_short} ∈ [" in text and "12 × 9 px" in text and f"{spec.steps} steps" in text
    assert "converged ←" in text and "→ diverged" in text
    assert "pixelated" in text  # the cells are embedded unresampled and drawn as blocks


def test_pdf_is_a_pdf_and_outputs_are_deterministic():
    args = (spec_of(), synthetic_measure())
    pdf = figures.map_figure(*args, fmt="pdf", width_in=4, height_in=3, dpi=100)
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    assert figures.map_figure(*args, fmt="PDF", width_in=4, height_in=3, dpi=100) == pdf
    assert figures.map_figure(*args, width_in=4, height_in=3, dpi=100) == figures.map_figure(
        *args, width_in=4, height_in=3, dpi=100)


def test_title_argument_replaces_the_experiment_line_but_keeps_the_view():
    data = figures.map_figure(spec_of(), synthetic_measure(), fmt="svg", width_in=6, height_in=5, dpi=100,
                              title="Figure 1a")
    text = data.decode("utf-8")
    assert "Figure 1a" in text and "log₁₀ lr₀ ∈ [" in text and "500 steps" not in text


def test_a_map_with_nan_cells_or_one_sign_still_renders():
    m = synthetic_measure()
    m[2:4, 3:5] = np.nan
    for measure in (m, np.abs(m), np.full((9, 12), np.nan)):
        data = figures.map_figure(spec_of(), measure, width_in=4, height_in=3, dpi=60)
        assert Image.open(io.BytesIO(data)).size == (240, 180)


def test_no_missing_glyphs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph … missing from font" for ₁₀, ∈, × or ←
        for fmt in figures.FORMATS:
            figures.map_figure(spec_of("offset"), synthetic_measure(), fmt=fmt, width_in=5, height_in=4, dpi=80)


# ------------------------------------------------------------------------------------------ colours, orientation
def test_cells_have_exactly_the_colours_of_render_measure():
    spec, m = spec_of(), synthetic_measure()
    fig = figures._build_map_figure(spec, m, width_in=6, height_in=5, dpi=100)
    px = rendered(fig, 100)
    ax = fig.axes[0]
    expected = render_measure(m)  # top row = largest y
    for i, y in enumerate(spec.y_values):
        for j, x in enumerate(spec.x_values):
            r, c = data_to_pixel(ax, x, y, px.shape[0])
            assert tuple(px[r, c]) == tuple(expected[spec.n_y - 1 - i, j]), (i, j)


@pytest.mark.parametrize("row,col,corner", [(-1, -1, "top-right"), (0, -1, "bottom-right"),
                                            (-1, 0, "top-left"), (0, 0, "bottom-left")])
def test_a_hot_corner_lands_in_that_corner_of_the_axes(row, col, corner):
    """Row 0 of the measure is the smallest y: at the bottom, as on the page (plotly draws row 0 at the bottom)."""
    spec = spec_of(n_x=10, n_y=8)
    m = -np.arange(1.0, 81.0).reshape(8, 10)  # all converged ...
    m[row, col] = 7.0  # ... but one diverged corner
    fig = figures._build_map_figure(spec, m, width_in=5, height_in=4, dpi=100)
    px = rendered(fig, 100).astype(int)
    bb = fig.axes[0].get_window_extent()
    h = px.shape[0]
    inset = 4  # pixels inside the axes' frame
    corners = {
        "top-left": (int(h - bb.y1) + inset, int(bb.x0) + inset),
        "top-right": (int(h - bb.y1) + inset, int(bb.x1) - inset),
        "bottom-left": (int(h - bb.y0) - inset, int(bb.x0) + inset),
        "bottom-right": (int(h - bb.y0) - inset, int(bb.x1) - inset),
    }
    hot = render_measure(m)[::-1][row, col].astype(int)  # row 0 of render_measure is the top
    assert np.abs(render_measure(m).astype(int) - hot).max(axis=-1).astype(bool).sum() == m.size - 1
    for name, (r, c) in corners.items():
        is_hot = np.abs(px[r, c] - hot).max() <= 2
        assert is_hot == (name == corner), (name, tuple(px[r, c]))


def test_axes_span_the_cells_with_the_view_at_cell_centres():
    spec = spec_of(n_x=10, n_y=5)
    fig = figures._build_map_figure(spec, np.ones((5, 10)), width_in=5, height_in=4, dpi=80)
    ax = fig.axes[0]
    dx, dy = 9.0 / 9, 9.0 / 4
    assert ax.get_xlim() == pytest.approx((-3 - dx / 2, 6 + dx / 2))
    assert ax.get_ylim() == pytest.approx((-3 - dy / 2, 6 + dy / 2))
    w, h = ax.get_window_extent().width, ax.get_window_extent().height
    assert h / w == pytest.approx(5 / 10, rel=0.02)  # square cells


def test_colourbar_ticks_name_the_measure_at_equalised_positions():
    m = synthetic_measure()
    pos, labels = figures.colourbar_ticks(m)
    assert pos == sorted(pos) and pos[0] == -1.0 and pos[-1] == 1.0 and 0.0 in pos
    assert labels[pos.index(0.0)] == "0"
    # the ends are the extreme measures: most negative (slowest convergence) at -1, largest divergence at +1
    assert float(labels[0].replace("−", "-")) == pytest.approx(m.min(), rel=1e-2)
    assert float(labels[-1].replace("−", "-")) == pytest.approx(m[m >= 0].max(), rel=1e-2)
    assert float(labels[pos.index(-figures.BUFFER)].replace("−", "-")) == pytest.approx(m[m < 0].max(), rel=1e-2)
    only_converged = -np.abs(m) - 1
    pos, labels = figures.colourbar_ticks(only_converged)
    assert max(pos) == 0.0 and min(pos) == -1.0


def test_colourbar_labels_differ_where_values_do_and_equal_values_get_one_tick():
    m = np.concatenate([-np.linspace(10, 500, 50), 1.0 + np.linspace(0, 1e-3, 49), [201.4]]).reshape(10, 10)
    pos, labels = figures.colourbar_ticks(m)
    diverged = [lab for p, lab in zip(pos, labels) if p > 0]
    assert len(set(diverged)) == len(diverged) == 3  # 1.0000…, 1.0005…, 201.4 read differently, not "1", "1"
    one_value = np.where(np.arange(100).reshape(10, 10) < 50, -3.0, 2.0)
    pos, labels = figures.colourbar_ticks(one_value)
    assert labels == ["−3", "0", "2"]


def test_colourbar_label_is_the_long_one_where_it_fits_else_the_short_one():
    def label(w, h, n_y=12):
        fig = figures._build_map_figure(spec_of(n_y=n_y), synthetic_measure(n_y=n_y), width_in=w, height_in=h,
                                        dpi=50)
        return fig.axes[0].child_axes[0].yaxis.label.get_text()

    assert label(6.5, 5.5) == figures.COLOURBAR_LABEL
    assert label(6.5, 5.5, n_y=6) == figures.COLOURBAR_SHORT  # a wide map: a short bar, however tall the figure
    assert label(3.0, 2.5) == figures.COLOURBAR_SHORT


def test_colourbar_shows_the_maps_colours():
    fig = figures._build_map_figure(spec_of(), synthetic_measure(), width_in=6, height_in=5, dpi=100)
    px = rendered(fig, 100).astype(int)
    cax = fig.axes[0].child_axes[0]
    bb = cax.get_window_extent()
    h = px.shape[0]
    c = int((bb.x0 + bb.x1) / 2)
    for v in (-0.9, -0.5, 0.5, 0.9):
        y = bb.y0 + (v + 1) / 2 * bb.height
        assert np.abs(px[int(h - y), c] - colorize(np.array(v)).astype(int)).max() <= 6, v


def test_no_text_is_cut_even_small_and_deep():
    spec = spec_of("offset")
    deep = with_view(spec, zoom_view(view_of(spec), -1.2345678, 2.3456789, 1e9))
    for s, w, h in ((spec, 6.5, 5.5), (deep, 3.3, 3.0), (deep, 2.0, 2.0), (deep, 40.0, 2.0), (spec, 2.0, 8.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "constrained_layout not applied": labels would overlap
            fig = figures._build_map_figure(s, synthetic_measure(), width_in=w, height_in=h, dpi=50)
            fig.draw_without_rendering()
        drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # everything drawn, in inches
        assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01, (w, h, drawn)
        assert drawn.x1 <= w + 0.01 and drawn.y1 <= h + 0.01, (w, h, drawn)


# ------------------------------------------------------------------------------------------ zoom path
def zoom_levels(n: int):
    spec = spec_of()
    out = [(spec, synthetic_measure())]
    for k in range(1, n):
        prev = out[-1][0]
        out.append((with_view(prev, zoom_view(view_of(prev), 1.0 + 0.1 * k, 2.0, 3.0)), synthetic_measure()))
    return out


def test_zoom_path_draws_one_box_per_inner_level_at_the_next_view():
    levels = zoom_levels(3)
    fig, _ = figures._build_zoom_path_figure(levels, width_in=9, dpi=80)
    maps = [ax for ax in fig.axes if ax.get_images()]
    assert len(maps) == 3
    for k, ax in enumerate(maps):
        boxes = [p for p in ax.patches if (p.get_gid() or "").startswith("zoom-box-")]
        if k == 2:
            assert boxes == []
            continue
        assert len(boxes) == 1
        l, r, b, t = figures.cell_extent(levels[k + 1][0])
        assert boxes[0].get_xy() == pytest.approx((l, b))
        assert (boxes[0].get_width(), boxes[0].get_height()) == pytest.approx((r - l, t - b))
    svg = figures.zoom_path_figure(levels, fmt="svg", width_in=9, dpi=80)
    ET.fromstring(svg)
    text = svg.decode("utf-8")
    assert text.count('id="zoom-box-') == 2 and 'id="zoom-box-0"' in text and 'id="zoom-box-1"' in text
    assert "level 2" in text


def test_zoom_path_wraps_into_rows_and_marks_a_box_too_small_to_see():
    levels = zoom_levels(2)
    spec = levels[-1][0]
    levels.append((with_view(spec, zoom_view(view_of(spec), 1.1, 2.0, 1e4)), synthetic_measure()))
    levels += zoom_levels(3)
    fig, height = figures._build_zoom_path_figure(levels, width_in=10, dpi=60, columns=4)
    maps = [ax for ax in fig.axes if ax.get_images()]
    rows = {round(ax.get_position().y0, 3) for ax in maps}
    assert len(maps) == 6 and len(rows) == 2
    marks = [ln for ax in maps for ln in ax.lines if (ln.get_gid() or "").startswith("zoom-mark-")]
    assert [m.get_gid() for m in marks] == ["zoom-mark-1"]  # only the 1e4 zoom is too small to see as a box
    data = figures.zoom_path_figure(levels, fmt="png", width_in=10, dpi=60, columns=4)
    assert Image.open(io.BytesIO(data)).size == (600, round(height * 60))


def test_zoom_path_of_one_level_and_pdf():
    assert figures.zoom_path_figure(zoom_levels(1), fmt="pdf", width_in=4, dpi=72).startswith(b"%PDF")


@pytest.mark.parametrize("width,columns", [(2.0, 1), (3.0, 2), (6.0, 4), (16.0, 4)])
def test_zoom_path_text_is_not_cut(width, columns):
    spec = spec_of("offset")
    deep = with_view(spec, zoom_view(view_of(spec), -1.2345678, 2.3456789, 1e9))
    levels = zoom_levels(columns + 1) + [(deep, synthetic_measure())]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig, h = figures._build_zoom_path_figure(levels, width_in=width, dpi=50, columns=columns)
        fig.draw_without_rendering()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())
    assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01 and drawn.x1 <= width + 0.01 and drawn.y1 <= h + 0.01


# ------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("kw,match", [
    (dict(fmt="jpg"), r"fmt: must be one of png, svg, pdf, got 'jpg'"),
    (dict(fmt=None), r"fmt: must be one of"),
    (dict(dpi=1000), r"dpi: must be in 50\.\.600, got 1000"),
    (dict(dpi=10), r"dpi: must be in 50\.\.600, got 10"),
    (dict(dpi=float("nan")), r"dpi: must be in 50\.\.600"),
    (dict(dpi=True), r"dpi: must be in"),
    (dict(width_in=0), r"width_in: must be in 2\.\.40 inches, got 0"),
    (dict(height_in=1.5), r"height_in: must be in 2\.\.40 inches, got 1\.5"),
    (dict(width_in=float("inf")), r"width_in: must be in"),
    (dict(height_in="5"), r"height_in: must be in 2\.\.40 inches, got '5'"),
    (dict(width_in=40, height_in=40, dpi=600), r"size: must be at most 40 megapixels"),
])
def test_bad_output_options_are_refused_by_name(kw, match):
    args = dict(fmt="png", width_in=6, height_in=5, dpi=100) | kw
    with pytest.raises(ValueError, match=match):
        figures.map_figure(spec_of(), synthetic_measure(), **args)


def test_a_huge_request_is_refused_before_allocating():
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="megapixels"):
            figures.map_figure(spec_of(), synthetic_measure(), width_in=40, height_in=40, dpi=600)
        with pytest.raises(ValueError, match="megapixels"):
            figures.zoom_path_figure(zoom_levels(1), width_in=40, dpi=600)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


@pytest.mark.parametrize("call,match", [
    (lambda: figures.map_figure(spec_of(), np.zeros((12, 9))), r"measure: must have the spec's shape"),
    (lambda: figures.map_figure(spec_of(), np.zeros(5)), r"measure: must have the spec's shape"),
    (lambda: figures.map_figure(spec_of(), [["a"]]), r"measure: must be a numeric array"),
    (lambda: figures.map_figure({"x_range": 1}, np.zeros((9, 12))), r"spec: must be a GridSpec"),
    (lambda: figures.zoom_path_figure([]), r"levels: must hold 1\.\.24"),
    (lambda: figures.zoom_path_figure(zoom_levels(1) * 25), r"levels: must hold 1\.\.24 .*got 25"),
    (lambda: figures.zoom_path_figure(5), r"levels: must be a list"),
    (lambda: figures.zoom_path_figure([spec_of()]), r"levels\[0\]: must be a \(spec, measure\) pair"),
    (lambda: figures.zoom_path_figure([(spec_of(), np.zeros((2, 2)))]), r"levels\[0\] measure: must have"),
    (lambda: figures.zoom_path_figure(zoom_levels(2), columns=0), r"columns: must be in 1\.\.12"),
    (lambda: figures.zoom_path_figure(zoom_levels(2), columns=1.5), r"columns: must be an integer in 1\.\.12, got 1\.5"),
    (lambda: figures.zoom_path_figure(zoom_levels(2), title="x" * 201), r"title: .* at most 200 .* got 201"),
    (lambda: figures.map_figure(spec_of(), synthetic_measure(), title=b"x"), r"title: must be text .* bytes"),
    (lambda: figures.zoom_path_figure(zoom_levels(1) * 24, columns=1), r"levels: 24 panels .* height"),
    (lambda: figures.zoom_path_figure(zoom_levels(4), width_in=4), r"width_in: 4 columns need at least 6 inches"),
])
def test_bad_levels_and_measures_are_refused_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------------ threads, no pyplot
def test_renders_from_threads_agree():
    args = (spec_of(), synthetic_measure())
    want = figures.map_figure(*args, width_in=4, height_in=3, dpi=80)
    got: list[bytes] = []
    threads = [threading.Thread(target=lambda: got.append(figures.map_figure(*args, width_in=4, height_in=3,
                                                                             dpi=80))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [want] * 4


def test_pyplot_is_never_imported():
    code = ("import sys, numpy as np\n"
            "from engine.trainability import figures\n"
            "from engine.trainability.presets import preset\n"
            "figures.map_figure(preset('tanh', resolution=4), np.ones((4, 4)), width_in=3, height_in=3, dpi=50)\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(figures_root()))


def figures_root():
    from pathlib import Path

    return Path(figures.__file__).resolve().parents[2]
