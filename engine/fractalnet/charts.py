"""FractalNet charts described once and drawn twice: the page turns a :class:`Chart` into a plotly figure, a
download renders the same :class:`Chart` to PNG with matplotlib. Both draw the same series with the same colours,
widths, dashes, markers and drawing order (the first series lies at the bottom), so a downloaded chart is the
chart on the page. Every colour comes from the palette constants below.

Widths and marker sizes are CSS pixels, as plotly takes them; the PNG maps a CSS pixel to 0.75 pt (the CSS
definition) and renders at ``96 × scale`` dpi, so at ``scale=1`` one PNG pixel is one page pixel.

Example::

    from engine.fractalnet import charts, results
    rows, summary = results.read_metrics(d), results.read_summary(d)
    chart = charts.curves_chart(rows, "loss", len(summary["accuracy"]["columns"]))
    open("loss.png", "wb").write(charts.chart_png(chart, width=900, scale=2))
    both = charts.compare_chart([("run a", rows_a), ("run b", rows_b)], "accuracy", x="time", smoothing=0.6)
"""

from __future__ import annotations

import bisect
import io
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from engine.fractalnet.metrics import curve_points

# ---------------------------------------------------------------------------------------------------- palette
COLUMN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")  # column k (MAX_COLUMNS = 6)
FULL_NET_COLOR = "#111111"
TRAIN_STEP_COLOR = "#8a8a8a"  # every logged step: noisy, so thin, faint and at the bottom
TRAIN_MEAN_COLOR = "#444444"
RUN_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
              "#bab0ac")  # Tableau 10: one per compared run
CONFUSION_COLORS = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c",
                    "#08306b")  # ColorBrewer Blues (plotly's "Blues"), low to high

X_AXES = {"step": "optimiser step", "epoch": "epoch", "time": "wall time (s)"}
METRICS = ("loss", "accuracy")
DASHES = ("solid", "dot", "dash")
PT_PER_PX = 0.75
PNG_WIDTH = 760  # CSS pixels of a downloaded chart (about a half-width chart on a wide page)


@dataclass(frozen=True)
class Series:
    """One line: ``y[i]`` at ``x[i]`` (None breaks the line). ``marker``: dot diameter in px, 0 for none."""

    name: str
    x: tuple[float, ...]
    y: tuple[float | None, ...]
    color: str
    width: float = 2.0
    dash: str = "solid"
    marker: float = 0.0
    opacity: float = 1.0
    legend: bool = True
    group: str | None = None  # a legend group (one compared run): its lines show and hide together on the page


@dataclass(frozen=True)
class Bars:
    """One bar per label (grouped beside the other :class:`Bars` of the chart); ``colors``: one, or one per bar."""

    name: str
    labels: tuple[str, ...]
    values: tuple[float | None, ...]
    colors: tuple[str, ...]
    texts: tuple[str, ...] = ()  # printed above each bar
    hover: tuple[str, ...] = ()  # the page's hover text per bar


@dataclass(frozen=True)
class Heat:
    """A matrix of counts, row 0 at the top, coloured from ``colors[0]`` (lowest) to ``colors[-1]``."""

    z: tuple[tuple[float, ...], ...]
    x: tuple[str, ...]
    y: tuple[str, ...]
    colors: tuple[str, ...] = CONFUSION_COLORS
    text: bool = True  # print each cell's value


@dataclass(frozen=True)
class Chart:
    """What one chart shows: series are drawn in order (the first at the bottom), bars grouped, or one heat map."""

    title: str
    x_title: str = ""
    y_title: str = ""
    series: tuple[Series, ...] = ()
    bars: tuple[Bars, ...] = ()
    heat: Heat | None = None
    y_range: tuple[float, float] | None = None
    y_percent: bool = False
    log_y: bool = False
    height: int = 340  # CSS pixels, on the page and in the PNG

    def colors(self) -> list[str]:
        """Every colour the chart uses, in drawing order (what a test compares with a rendering)."""
        out = [c for b in self.bars for c in b.colors] + [s.color for s in self.series]
        return out + list(self.heat.colors if self.heat else ())


def column_color(k: int) -> str:
    return COLUMN_COLORS[k % len(COLUMN_COLORS)]


def run_color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


# ------------------------------------------------------------------------------------------- one run's charts
def curves_chart(rows: Sequence[dict], metric: str, columns: int, *, title: str | None = None,
                 height: int = 340) -> Chart:
    """A run's ``metric`` ("loss" or "accuracy") against epochs: every logged training step (thin and faint, at
    the bottom), each epoch's training mean, each column alone, and the full net on top."""
    if metric not in METRICS:
        raise ValueError(f"metric: must be one of {', '.join(METRICS)}, got {metric!r}")
    pts = curve_points(list(rows), metric, columns)
    styles = [("train (each step)", dict(color=TRAIN_STEP_COLOR, width=1.0, opacity=0.7)),
              ("train (epoch mean)", dict(color=TRAIN_MEAN_COLOR, width=1.5, dash="dot", marker=5.0))]
    styles += [(f"test: column {k}", dict(color=column_color(k), width=2.0, marker=5.0)) for k in range(columns)]
    styles += [("test: full net", dict(color=FULL_NET_COLOR, width=2.5, marker=6.0))]
    series = []
    for name, style in styles:
        xy = [(p["epoch"], p[name]) for p in pts if name in p]
        if xy:
            series.append(Series(name, tuple(x for x, _ in xy), tuple(y for _, y in xy), **style))
    return Chart(title or metric.capitalize(), "epoch", metric, tuple(series), height=height,
                 y_percent=metric == "accuracy")


def columns_chart(summary: dict, *, height: int = 360) -> Chart:
    """Final test accuracy of each column alone and of the full net (the paper's claim at a glance)."""
    acc = summary["accuracy"]
    ncol = len(acc["columns"])
    depths = summary.get("column_depths") or [None] * ncol
    values = (*acc["columns"], acc["full"])
    bars = Bars("test accuracy", (*(f"column {k}" for k in range(ncol)), "full net"), values,
                (*(column_color(k) for k in range(ncol)), FULL_NET_COLOR), tuple(f"{a:.2%}" for a in values),
                (*(f"depth {d} convs" for d in depths), "all columns joined"))
    return Chart("Each column alone vs. the full net (test accuracy)", "", "test accuracy", bars=(bars,),
                 y_range=(max(0.0, min(values) - 0.1), 1.0), y_percent=True, height=height)


def confusion_chart(summary: dict, *, height: int = 360) -> Chart:
    """The full net's confusion matrix on the test split (rows: true class, columns: predicted)."""
    cm = summary["confusion_matrix"]
    classes = tuple(str(c) for c in (summary.get("classes") or range(len(cm))))
    heat = Heat(tuple(tuple(float(v) for v in row) for row in cm), classes, classes, text=len(classes) <= 20)
    return Chart("Confusion matrix (test split, full net)", "predicted", "true", heat=heat, height=height)


def run_charts(summary: dict, rows: Sequence[dict]) -> dict[str, Chart]:
    """A finished run's charts by download file name, exactly as its Results section draws them."""
    ncol = len(summary["accuracy"]["columns"])
    return {"loss.png": curves_chart(rows, "loss", ncol), "accuracy.png": curves_chart(rows, "accuracy", ncol),
            "columns.png": columns_chart(summary), "confusion.png": confusion_chart(summary)}


# --------------------------------------------------------------------------------------------- comparing runs
def ema(values: Sequence[float | None], weight: float) -> list[float | None]:
    """TensorBoard's smoothing: an exponential moving average with weight ``weight`` in [0, 1), debiased so the
    first points are not pulled towards zero; None and non-finite values stay gaps and do not count."""
    if not (isinstance(weight, (int, float)) and 0.0 <= weight < 1.0):
        raise ValueError(f"smoothing: must be in [0, 1), got {weight!r}")
    out: list[float | None] = []
    last, n = 0.0, 0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(None)
            continue
        n += 1
        last = last * weight + (1.0 - weight) * v
        out.append(last / (1.0 - weight ** n))
    return out


def wall_times(rows: Sequence[dict]) -> list[float | None]:
    """Seconds since the run started at each row: its training time (``train_s`` at each epoch's end,
    interpolated between them by step) plus the test passes (``eval_s``) run before it. A step logged at an
    epoch's last step comes before that epoch's test pass; steps after the last epoch extrapolate its pace.
    All None when no epoch recorded its times."""
    ends = sorted((int(r["step"]), float(r["train_s"]), float(r.get("eval_s", 0.0))) for r in rows
                  if r.get("kind") == "epoch" and "train_s" in r and "step" in r)
    if not ends:
        return [None] * len(rows)
    steps, times, evals = [0], [0.0], [0.0]  # evals[i]: test-pass seconds after anchor i (cumulative)
    for s, t, e in ends:
        if s > steps[-1]:
            steps.append(s)
            times.append(t)
            evals.append(evals[-1] + e)
        else:  # the same step twice (cannot happen in one history): keep the later pass's time
            evals[-1] += e

    def train_time(s: float) -> float:
        i = bisect.bisect_left(steps, s)
        if i < len(steps) and steps[i] == s:
            return times[i]
        if i >= len(steps):
            i = len(steps) - 1
        return times[i - 1] + (s - steps[i - 1]) * (times[i] - times[i - 1]) / (steps[i] - steps[i - 1])

    out: list[float | None] = []
    for r in rows:
        if "step" not in r:
            out.append(None)
            continue
        s = float(r["step"])
        before = bisect.bisect_right(steps, s) - 1 if r.get("kind") == "epoch" else bisect.bisect_left(steps, s) - 1
        out.append(train_time(s) + evals[max(0, before)])
    return out


def _xs(rows: Sequence[dict], x: str) -> list[float | None]:
    if x == "time":
        return wall_times(rows)
    return [float(r[x]) if x in r else None for r in rows]


def compare_chart(runs: Sequence[tuple[str, Sequence[dict]]], metric: str, *, x: str = "step",
                  smoothing: float = 0.6, log_y: bool = False, height: int = 380) -> Chart:
    """``metric`` of several runs overlaid, one colour per run (:data:`RUN_COLORS`, in the order given): each
    run's training value per logged step, smoothed with :func:`ema` (the raw values faint beneath it), and its
    test value per epoch (dashed, with dots), drawn above every training line. ``x``: "step", "epoch" or "time"
    (:func:`wall_times`); ``log_y`` drops values <= 0."""
    if metric not in METRICS:
        raise ValueError(f"metric: must be one of {', '.join(METRICS)}, got {metric!r}")
    if x not in X_AXES:
        raise ValueError(f"x: must be one of {', '.join(X_AXES)}, got {x!r}")
    smoothing = float(smoothing)
    ema([], smoothing)  # checks it
    raw, train, test = [], [], []

    def ok(v) -> bool:
        return v is not None and math.isfinite(v) and (not log_y or v > 0)

    for i, (label, rows) in enumerate(runs):
        rows = [r for r in rows if isinstance(r, dict)]
        color, xs = run_color(i), _xs(rows, x)
        steps = [(xv, float(r[metric])) for r, xv in zip(rows, xs)
                 if r.get("kind") == "step" and metric in r and xv is not None and ok(float(r[metric]))]
        if steps:
            sx, sy = tuple(p[0] for p in steps), tuple(p[1] for p in steps)
            if smoothing > 0:
                raw.append(Series(f"{label} · train (raw)", sx, sy, color, width=1.0, opacity=0.25, legend=False,
                                  group=label))
            train.append(Series(f"{label} · train", sx, tuple(ema(sy, smoothing)), color, width=1.5, group=label))
        key = f"val_{metric}"
        ends = [(xv, float(r[key])) for r, xv in zip(rows, xs)
                if r.get("kind") == "epoch" and key in r and xv is not None and ok(float(r[key]))]
        if ends:
            test.append(Series(f"{label} · test", tuple(p[0] for p in ends), tuple(p[1] for p in ends), color,
                               width=2.0, dash="dash", marker=6.0, group=label))
    what = "smoothed" if smoothing > 0 else "each step"
    return Chart(f"{metric.capitalize()}: train ({what}) and test (full net)", X_AXES[x], metric,
                 (*raw, *train, *test), y_percent=metric == "accuracy" and not log_y, log_y=log_y, height=height)


def compare_columns_chart(runs: Sequence[tuple[str, dict]], *, height: int = 380) -> Chart:
    """Final test accuracy of each column alone and of the full net, one group of bars per run's colour."""
    most = max((len(s["accuracy"]["columns"]) for _, s in runs), default=0)
    groups = (*(f"column {k}" for k in range(most)), "full net")
    bars = []
    for i, (label, summary) in enumerate(runs):
        cols = summary["accuracy"]["columns"]
        vals = (*(cols[k] if k < len(cols) else None for k in range(most)), summary["accuracy"]["full"])
        bars.append(Bars(label, groups, vals, (run_color(i),)))
    return Chart("Final test accuracy: each column alone and the full net", "", "test accuracy", bars=tuple(bars),
                 y_range=(0.0, 1.0), y_percent=True, height=height)


# ------------------------------------------------------------------------------------------------- rendering
_RENDER_LOCK = threading.Lock()  # matplotlib's text engine and font cache are shared state
_LINESTYLES = {"solid": "-", "dot": ":", "dash": "--"}


def _bars(ax, chart: Chart) -> None:
    n = len(chart.bars)
    width = 0.8 / n
    for j, b in enumerate(chart.bars):
        pos = [i - 0.4 + width * (j + 0.5) for i in range(len(b.labels))]
        vals = [math.nan if v is None else v for v in b.values]
        colors = list(b.colors) if len(b.colors) == len(vals) else [b.colors[0]] * len(vals)
        ax.bar(pos, vals, width=width, color=colors, label=b.name)
        for p, v, t in zip(pos, vals, b.texts):
            if math.isfinite(v):
                ax.annotate(t, (p, v), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                            fontsize=9)
    labels = chart.bars[0].labels
    ax.set_xticks(range(len(labels)), labels)


def _heat(fig, ax, heat: Heat) -> None:
    import numpy as np
    from matplotlib.colors import LinearSegmentedColormap

    z = np.asarray(heat.z, dtype=float)
    cmap = LinearSegmentedColormap.from_list("confusion", list(heat.colors))
    im = ax.imshow(z, cmap=cmap, aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(len(heat.x)), heat.x)
    ax.set_yticks(range(len(heat.y)), heat.y)
    if heat.text:
        hi = float(z.max()) if z.size else 0.0
        for (i, j), v in np.ndenumerate(z):
            ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=8,
                    color="white" if hi and v > 0.55 * hi else "black")


def draw(chart: Chart, *, width: int = PNG_WIDTH, scale: float = 1.0):
    """The chart as a matplotlib ``Figure`` (object API, no pyplot), ``width`` × ``chart.height`` CSS pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

    if not (isinstance(width, int) and 200 <= width <= 4000 and 0.5 <= scale <= 8):
        raise ValueError(f"size: width must be 200..4000 px and scale 0.5..8, got {width!r} and {scale!r}")
    fig = Figure(figsize=(width / 96, chart.height / 96), dpi=96 * scale, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    fig.suptitle(chart.title, fontsize=12)
    if chart.bars:
        _bars(ax, chart)
    if chart.heat is not None:
        _heat(fig, ax, chart.heat)
    for i, s in enumerate(chart.series):
        ys = [math.nan if v is None else v for v in s.y]
        ax.plot(s.x, ys, color=s.color, linewidth=s.width * PT_PER_PX, linestyle=_LINESTYLES[s.dash],
                marker="o" if s.marker else None, markersize=s.marker * PT_PER_PX, alpha=s.opacity,
                label=s.name if s.legend else "_nolegend_", zorder=2 + i / max(1, len(chart.series)))
    ax.set_xlabel(chart.x_title)
    ax.set_ylabel(chart.y_title)
    if chart.log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    if chart.y_range is not None:
        ax.set_ylim(*chart.y_range)
    if chart.y_percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    if chart.heat is None:
        ax.grid(True, color="#e6e6e6", linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)
    shown = sum(s.legend for s in chart.series) + (len(chart.bars) if len(chart.bars) > 1 else 0)
    if shown:  # below the axes, as on the page
        fig.legend(loc="outside lower left", ncol=min(shown, max(1, width // 190)), frameon=False, fontsize=8)
    return fig


def chart_png(chart: Chart, *, width: int = PNG_WIDTH, scale: float = 2.0) -> bytes:
    """The chart as a PNG of ``width·scale`` × ``height·scale`` pixels, drawn as the page draws it."""
    with _RENDER_LOCK:
        fig = draw(chart, width=width, scale=scale)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=96 * scale, metadata={"Software": None})
    return buf.getvalue()
