"""engine.fractalnet.charts: one chart description that the page (plotly) and the downloads (matplotlib PNG) both
draw, TensorBoard's smoothing, wall time from a run's rows, and the compare overlays."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from engine.fractalnet import charts

# Two epochs of two logged steps; each epoch trains 2 s and tests 1 s.
ROWS = [
    {"kind": "step", "epoch": 0.5, "step": 1, "loss": 2.0, "accuracy": 0.1, "images_per_s": 100.0},
    {"kind": "step", "epoch": 1.0, "step": 2, "loss": 1.6, "accuracy": 0.3, "images_per_s": 100.0},
    {"kind": "epoch", "epoch": 1.0, "step": 2, "train_loss": 1.8, "train_accuracy": 0.2, "val_loss": 1.7,
     "val_accuracy": 0.35, "val_loss_col0": 1.9, "val_accuracy_col0": 0.3, "val_loss_col1": 1.75,
     "val_accuracy_col1": 0.33, "train_s": 2.0, "eval_s": 1.0},
    {"kind": "step", "epoch": 1.5, "step": 3, "loss": 1.2, "accuracy": 0.5, "images_per_s": 100.0},
    {"kind": "step", "epoch": 2.0, "step": 4, "loss": 1.0, "accuracy": 0.6, "images_per_s": 100.0},
    {"kind": "epoch", "epoch": 2.0, "step": 4, "train_loss": 1.1, "train_accuracy": 0.55, "val_loss": 1.05,
     "val_accuracy": 0.62, "val_loss_col0": 1.3, "val_accuracy_col0": 0.5, "val_loss_col1": 1.1,
     "val_accuracy_col1": 0.6, "train_s": 4.0, "eval_s": 1.0},
]
MANY_PIXELS = 300  # a line at scale 2 covers thousands; antialiased edges of other colours a few dozen each
SUMMARY = {"accuracy": {"full": 0.62, "columns": [0.5, 0.6]}, "confusion_matrix": [[3, 1], [0, 4]],
           "classes": ["0", "1"], "column_depths": [1, 2]}


def assert_colours_drawn(png: bytes, series) -> None:
    """The PNG's lines are the series' colours: every solid opaque series covers many pixels of exactly its
    colour, and no other saturated colour covers as many (antialiased edges and text make only a few)."""
    counts = Counter(map(tuple, np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).tolist()))
    rgb = {s.name: tuple(int(s.color[i:i + 2], 16) for i in (1, 3, 5)) for s in series}
    for s in series:
        if s.opacity == 1.0 and s.dash == "solid":
            assert counts[rgb[s.name]] >= MANY_PIXELS, (s.name, s.color, counts[rgb[s.name]])
    strong = {c for c, n in counts.items() if n >= MANY_PIXELS and max(c) - min(c) > 40}
    assert strong <= set(rgb.values()), strong - set(rgb.values())


def test_a_runs_curves_put_the_thin_training_trace_under_the_test_curves():
    chart = charts.curves_chart(ROWS, "loss", 2)
    names = [s.name for s in chart.series]
    assert names == ["train (each step)", "train (epoch mean)", "test: column 0", "test: column 1", "test: full net"]
    train, *rest = chart.series
    assert train.width < min(s.width for s in rest) and train.opacity < 1 and train.marker == 0
    assert chart.series[-1].color == charts.FULL_NET_COLOR
    assert [s.color for s in chart.series[2:4]] == list(charts.COLUMN_COLORS[:2])
    assert train.x == (0.5, 1.0, 1.5, 2.0) and train.y == (2.0, 1.6, 1.2, 1.0)
    assert chart.series[-1].y == (1.7, 1.05)
    assert charts.curves_chart(ROWS, "accuracy", 2).y_percent
    with pytest.raises(ValueError, match="metric"):
        charts.curves_chart(ROWS, "speed", 2)


def test_the_png_draws_the_description_in_its_order_colours_and_widths():
    chart = charts.curves_chart(ROWS, "loss", 2)
    fig = charts.draw(chart, width=600, scale=1)
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == [s.name for s in chart.series]
    for ln, s in zip(lines, chart.series):
        assert to_hex(ln.get_color()) == s.color
        assert ln.get_linewidth() == pytest.approx(s.width * charts.PT_PER_PX)
        assert (ln.get_alpha() or 1.0) == pytest.approx(s.opacity)
    z = [ln.get_zorder() for ln in lines]
    assert z == sorted(z) and len(set(z)) == len(z)  # drawn in the description's order: the first at the bottom

    png = charts.chart_png(chart, width=600, scale=2)
    img = Image.open(io.BytesIO(png))
    assert img.size == (1200, 2 * chart.height)
    assert_colours_drawn(png, chart.series)
    assert charts.chart_png(chart, width=600, scale=2) == png  # no timestamp: equal charts, equal files


def test_bars_and_the_confusion_matrix_render_their_palette():
    figs = charts.run_charts(SUMMARY, ROWS)
    assert set(figs) == {"loss.png", "accuracy.png", "columns.png", "confusion.png"}
    cols = figs["columns.png"]
    assert cols.bars[0].colors == (*charts.COLUMN_COLORS[:2], charts.FULL_NET_COLOR)
    bars = charts.draw(cols, width=500, scale=1).axes[0].patches
    assert [to_hex(p.get_facecolor()) for p in bars] == list(cols.bars[0].colors)
    conf = charts.draw(figs["confusion.png"], width=500, scale=1)
    cmap = conf.axes[0].images[0].get_cmap()
    assert to_hex(cmap(0.0)) == charts.CONFUSION_COLORS[0] and to_hex(cmap(1.0)) == charts.CONFUSION_COLORS[-1]
    for chart in figs.values():
        assert Image.open(io.BytesIO(charts.chart_png(chart, width=400, scale=1))).size == (400, chart.height)


def test_ema_is_tensorboards_debiased_smoothing():
    assert charts.ema([1.0, 2.0, 3.0], 0.5) == pytest.approx([1.0, 1.25 / 0.75, 2.125 / 0.875])
    assert charts.ema([3.0, 1.0], 0.0) == [3.0, 1.0]
    assert charts.ema([5.0, 5.0, 5.0], 0.9) == pytest.approx([5.0, 5.0, 5.0])  # debiased: no pull towards 0
    assert charts.ema([1.0, None, float("nan"), 3.0], 0.5) == pytest.approx([1.0, None, None, 1.75 / 0.75])
    for bad in (1.0, -0.1, "0.5"):
        with pytest.raises(ValueError, match="smoothing"):
            charts.ema([1.0], bad)


def test_wall_time_counts_training_and_the_test_passes_before_each_row():
    # step 1 is half of epoch 1's 2 s; step 2 ends it (its test pass comes after); epoch 1's row follows that
    # pass; epoch 2's steps come after 2 s + 1 s of epoch 1.
    assert charts.wall_times(ROWS) == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert charts.wall_times([{"kind": "step", "step": 1}]) == [None]
    live = ROWS[:3] + [{"kind": "step", "step": 3}]  # after the last epoch: its pace, extrapolated
    assert charts.wall_times(live)[-1] == pytest.approx(4.0)


def test_compare_overlays_runs_in_their_own_colours_with_test_curves_on_top():
    other = [dict(r, loss=r["loss"] * 2) if "loss" in r else r for r in ROWS]
    chart = charts.compare_chart([("a", ROWS), ("b", other)], "loss", x="epoch", smoothing=0.5)
    names = [s.name for s in chart.series]
    assert names == ["a · train (raw)", "b · train (raw)", "a · train", "b · train", "a · test", "b · test"]
    by = {s.name: s for s in chart.series}
    assert by["a · train"].color == by["a · test"].color == charts.RUN_COLORS[0]
    assert by["b · train"].color == charts.RUN_COLORS[1] != charts.RUN_COLORS[0]
    assert by["a · train (raw)"].opacity < 1 and not by["a · train (raw)"].legend
    assert by["a · train"].y == pytest.approx(tuple(charts.ema([2.0, 1.6, 1.2, 1.0], 0.5)))
    assert by["a · test"].x == (1.0, 2.0) and by["a · test"].y == (1.7, 1.05)
    assert chart.x_title == "epoch"
    raw = charts.compare_chart([("a", ROWS)], "loss", smoothing=0.0)
    assert [s.name for s in raw.series] == ["a · train", "a · test"] and raw.x_title == "optimiser step"
    assert raw.series[0].x == (1, 2, 3, 4)
    timed = charts.compare_chart([("a", ROWS)], "accuracy", x="time", smoothing=0.0)
    assert timed.series[1].x == pytest.approx((3.0, 6.0)) and timed.y_percent
    logged = charts.compare_chart([("a", [*ROWS, {"kind": "step", "step": 5, "loss": 0.0}])], "loss",
                                  smoothing=0.0, log_y=True)
    assert logged.log_y and 5 not in logged.series[0].x  # a zero has no place on a log axis
    for kw in ({"x": "hours"}, {"smoothing": 1.0}):
        with pytest.raises(ValueError):
            charts.compare_chart([("a", ROWS)], "loss", **kw)
    bars = charts.compare_columns_chart([("a", SUMMARY), ("b", {"accuracy": {"full": 0.7, "columns": [0.6]}})])
    assert [b.colors for b in bars.bars] == [(charts.RUN_COLORS[0],), (charts.RUN_COLORS[1],)]
    assert bars.bars[1].values == (0.6, None, 0.7)  # a run with fewer columns leaves a gap
