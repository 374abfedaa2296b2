"""PNG files drawn without a browser: images of arrays, and plain line, bar and heatmap charts with Pillow.

plotly's own PNG export needs kaleido and a browser; these are enough for a download beside each chart and for
the thumbnails of stored results. One font and one encoder for every PNG the lab writes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np


def upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (pixels stay sharp: each is one network)."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale: must be an integer >= 1, got {scale}")
    a = np.asarray(rgb)
    if scale == 1:
        return a
    return np.repeat(np.repeat(a, int(scale), axis=0), int(scale), axis=1)


def png_bytes(rgb: np.ndarray, scale: int = 1) -> bytes:
    """Encode an RGB (or greyscale) uint8 image as PNG, optionally enlarged ``scale`` times (nearest neighbour)."""
    from PIL import Image

    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        raise ValueError(f"rgb: expected a uint8 array, got {a.dtype}")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ValueError(f"rgb: expected shape (h, w), (h, w, 3) or (h, w, 4), got {a.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(upscale(a, scale))).save(buf, format="PNG", optimize=False)
    return buf.getvalue()

PNG_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
              "#bcbd22", "#17becf")


def font(size: int = 13):
    """The one font of every PNG the lab draws: DejaVu Sans when the system has it, else Pillow's own."""
    from PIL import ImageFont

    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _tick_text(v: float) -> str:
    return f"{v:.4g}"


def _png_canvas(width: int, height: int, title: str | None):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((width // 2, 8), title, fill="black", font=font(15), anchor="mt")
    return img, draw


def _png_y_title(img, draw, text: str, top: float, bottom: float) -> None:
    """Paste ``text`` rotated by 90 degrees at the left edge, centred on the plot's height."""
    if not text:
        return
    from PIL import Image, ImageDraw

    fnt = font(12)
    label = Image.new("RGB", (max(10, int(draw.textlength(text, font=fnt)) + 4), 16), "white")
    ImageDraw.Draw(label).text((2, 1), text, fill="black", font=fnt)
    label = label.rotate(90, expand=True)
    img.paste(label, (4, int((top + bottom) / 2 - label.height / 2)))


def _png_bytes_of(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str | None = None,
    x_title: str = "",
    y_title: str = "",
    width: int = 760,
    height: int = 420,
    log_y: bool = False,
) -> bytes:
    """A PNG line chart: ``series`` maps a legend name to ``(xs, ys)``; non-finite points are skipped."""
    img, draw = _png_canvas(width, height, title)
    fnt = font(12)
    clean: dict[str, list[tuple[float, float]]] = {}
    for name, (xs, ys) in series.items():
        pts = []
        for x, y in zip(xs, ys):
            try:
                x, y = float(x), float(y)
            except (TypeError, ValueError):
                continue
            if math.isfinite(x) and math.isfinite(y) and (not log_y or y > 0):
                pts.append((x, math.log10(y) if log_y else y))
        clean[name] = pts
    allpts = [p for pts in clean.values() for p in pts]
    x0, x1 = (min(p[0] for p in allpts), max(p[0] for p in allpts)) if allpts else (0.0, 1.0)
    y0, y1 = (min(p[1] for p in allpts), max(p[1] for p in allpts)) if allpts else (0.0, 1.0)
    if x1 <= x0:
        x1 = x0 + 1.0
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.04 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad
    legend_rows = math.ceil(len(clean) / 4) if clean else 0
    left, right, top, bottom = 64, width - 16, 34 + 16 * legend_rows, height - 44

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def py(y: float) -> float:
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    for t in _nice_ticks(y0, y1):
        yy = py(t)
        draw.line([(left, yy), (right, yy)], fill="#e6e6e6")
        draw.text((left - 6, yy), _tick_text(10**t if log_y else t), fill="#444", font=fnt, anchor="rm")
    for t in _nice_ticks(x0, x1, 6):
        xx = px(t)
        draw.line([(xx, top), (xx, bottom)], fill="#f0f0f0")
        draw.text((xx, bottom + 6), _tick_text(t), fill="#444", font=fnt, anchor="mt")
    draw.rectangle([left, top, right, bottom], outline="#888")
    for i, (name, pts) in enumerate(clean.items()):
        color = PNG_COLORS[i % len(PNG_COLORS)]
        if len(pts) >= 2:
            draw.line([(px(x), py(y)) for x, y in pts], fill=color, width=2)
        elif pts:
            x, y = pts[0]
            draw.ellipse([px(x) - 3, py(y) - 3, px(x) + 3, py(y) + 3], fill=color)
        lx = left + (i % 4) * ((right - left) // 4)
        ly = 30 + 16 * (i // 4)
        draw.line([(lx, ly + 7), (lx + 18, ly + 7)], fill=color, width=3)
        draw.text((lx + 22, ly), str(name)[:28], fill="black", font=fnt)
    if x_title:
        draw.text(((left + right) // 2, height - 6), x_title, fill="black", font=fnt, anchor="mb")
    _png_y_title(img, draw, y_title, top, bottom)
    return _png_bytes_of(img)


def png_bar_chart(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str | None = None,
    y_title: str = "",
    y_range: tuple[float, float] | None = None,
    width: int = 760,
    height: int = 420,
    value_format: str = "{:.3f}",
) -> bytes:
    """A PNG grouped bar chart: one group per label in ``groups``, one bar per series, values printed on top."""
    img, draw = _png_canvas(width, height, title)
    fnt = font(12)
    vals = [float(v) for vs in series.values() for v in vs if v is not None and math.isfinite(float(v))]
    lo, hi = y_range if y_range is not None else (min(0.0, min(vals, default=0.0)), max(vals, default=1.0) or 1.0)
    if hi <= lo:
        hi = lo + 1.0
    legend_rows = math.ceil(len(series) / 4) if len(series) > 1 else 0
    left, right, top, bottom = 64, width - 16, 40 + 16 * legend_rows, height - 50

    def py(y: float) -> float:
        return bottom - (min(max(y, lo), hi) - lo) / (hi - lo) * (bottom - top)

    for t in _nice_ticks(lo, hi):
        draw.line([(left, py(t)), (right, py(t))], fill="#e6e6e6")
        draw.text((left - 6, py(t)), _tick_text(t), fill="#444", font=fnt, anchor="rm")
    n_groups, n_series = max(1, len(groups)), max(1, len(series))
    gw = (right - left) / n_groups
    bw = gw * 0.8 / n_series
    for si, (name, vs) in enumerate(series.items()):
        color = PNG_COLORS[si % len(PNG_COLORS)]
        for gi, v in enumerate(vs):
            if v is None or not math.isfinite(float(v)):
                continue
            xa = left + gi * gw + gw * 0.1 + si * bw
            draw.rectangle([xa, py(float(v)), xa + bw - 2, py(max(lo, 0.0))], fill=color)
            draw.text((xa + bw / 2, py(float(v)) - 2), value_format.format(float(v)), fill="black", font=fnt,
                      anchor="mb")
        if len(series) > 1:
            lx = left + (si % 4) * ((right - left) // 4)
            ly = 30 + 16 * (si // 4)
            draw.rectangle([lx, ly + 2, lx + 12, ly + 12], fill=color)
            draw.text((lx + 16, ly), str(name)[:28], fill="black", font=fnt)
    for gi, g in enumerate(groups):
        draw.text((left + gi * gw + gw / 2, bottom + 6), str(g)[:24], fill="black", font=fnt, anchor="mt")
    draw.rectangle([left, top, right, bottom], outline="#888")
    _png_y_title(img, draw, y_title, top, bottom)
    return _png_bytes_of(img)


def png_heatmap(
    matrix: Sequence[Sequence[float]],
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    x_title: str = "",
    y_title: str = "",
    annotate: bool = True,
    cell: int | None = None,
) -> bytes:
    """A PNG heatmap (white to dark blue) with optional numbers in the cells: e.g. a confusion matrix."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    rows, cols = m.shape
    cell = cell or max(10, min(48, 560 // max(rows, cols, 1)))
    left, top = 90, 40
    width, height = left + cols * cell + 20, top + rows * cell + 50
    img, draw = _png_canvas(width, height, title)
    fnt = font(max(8, min(12, cell // 3)))
    finite = m[np.isfinite(m)]
    hi = float(finite.max()) if finite.size else 1.0
    lo = float(min(0.0, finite.min())) if finite.size else 0.0
    span = hi - lo if hi > lo else 1.0
    for i in range(rows):
        for j in range(cols):
            v = m[i, j]
            t = 0.0 if not math.isfinite(v) else (v - lo) / span
            color = (int(255 - t * 247), int(255 - t * 207), int(255 - t * 148))
            x, y = left + j * cell, top + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=color)
            if annotate and cell >= 18 and math.isfinite(v):
                text = f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"
                draw.text((x + cell / 2, y + cell / 2), text, fill="white" if t > 0.55 else "black", font=fnt,
                          anchor="mm")
    for i, lab in enumerate(row_labels or []):
        draw.text((left - 4, top + i * cell + cell / 2), str(lab)[:12], fill="black", font=fnt, anchor="rm")
    for j, lab in enumerate(col_labels or []):
        draw.text((left + j * cell + cell / 2, top + rows * cell + 4), str(lab)[:6], fill="black", font=fnt,
                  anchor="mt")
    if x_title:
        draw.text((left + cols * cell / 2, height - 6), x_title, fill="black", font=font(12), anchor="mb")
    _png_y_title(img, draw, y_title, top, top + rows * cell)
    return _png_bytes_of(img)
