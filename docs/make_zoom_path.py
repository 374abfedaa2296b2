"""Make docs/zoom_path.png: the zoom-path figure of a real three-level zoom into the tanh experiment's boundary,
computed with the engine (one grid per level), the way the explorer's "Figure for a paper" draws it.

    .venv/bin/python docs/make_zoom_path.py                          # 64 x 64 per level, x4 per level
    .venv/bin/python docs/make_zoom_path.py --resolution 128 --out /tmp/zoom.pdf

Each next view is centred on a boundary pixel (one next to a pixel of the other verdict): the one whose window of the
next view's size holds the most boundary, a little clear of the map's edge, so every panel shows fractal detail. Nothing is read from
or written to the result store.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.trainability import figures, presets, run_grid  # noqa: E402
from engine.trainability.views import view_of, view_spec, zoom_view  # noqa: E402


def boundary(measure: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of the other verdict (converged: measure < 0)."""
    c = measure < 0
    b = np.zeros_like(c)
    b[1:, :] |= c[1:, :] != c[:-1, :]
    b[:-1, :] |= c[1:, :] != c[:-1, :]
    b[:, 1:] |= c[:, 1:] != c[:, :-1]
    b[:, :-1] |= c[:, 1:] != c[:, :-1]
    return b


def busiest_centre(spec, measure: np.ndarray, factor: float) -> tuple[float, float]:
    """The (x, y) of the boundary pixel whose window, ``1/factor`` of the map's size, holds the most boundary
    pixels (the window kept a little clear of the map's edge)."""
    b = boundary(measure)
    ny, nx = b.shape
    wy, wx = max(1, round(ny / factor)), max(1, round(nx / factor))
    s = np.pad(b.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    counts = s[wy:, wx:] - s[:-wy, wx:] - s[wy:, :-wx] + s[:-wy, :-wx]  # window sums, top-left at (i, j)
    centres = b[wy // 2: wy // 2 + counts.shape[0], wx // 2: wx // 2 + counts.shape[1]]
    my, mx = wy // 4, wx // 4  # the margin
    keep = np.zeros_like(centres)
    keep[my: centres.shape[0] - my, mx: centres.shape[1] - mx] = True
    score = np.where(centres & keep, counts, -1)
    i, j = np.unravel_index(np.argmax(score), score.shape)
    ci, cj = i + wy // 2, j + wx // 2
    (x0, x1), (y0, y1) = spec.x_range, spec.y_range
    return x0 + cj * (x1 - x0) / (nx - 1), y0 + ci * (y1 - y0) / (ny - 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tanh", choices=list(presets.PRESETS))
    ap.add_argument("--resolution", type=int, default=64, help="pixels per side of each level (default 64)")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--factor", type=float, default=4.0, help="zoom per level (default 4)")
    ap.add_argument("--width", type=float, default=12.0, help="figure width in inches")
    ap.add_argument("--dpi", type=float, default=110)
    ap.add_argument("--out", default=str(ROOT / "docs" / "zoom_path.png"))
    args = ap.parse_args(argv)
    base = presets.preset(args.preset, resolution=args.resolution)
    view = view_of(base)
    levels = []
    for k in range(args.levels):
        spec = view_spec(base, view)[0]
        t0 = time.perf_counter()
        measure = run_grid(spec).measure
        print(f"level {k}: x {spec.x_range}, y {spec.y_range}, {spec.dtype}: {time.perf_counter() - t0:.1f} s",
              flush=True)
        levels.append((spec, measure))
        view = zoom_view(view, *busiest_centre(spec, measure, args.factor), args.factor)
    out = Path(args.out)
    fmt = out.suffix.lstrip(".").lower() or "png"
    out.write_bytes(figures.zoom_path_figure(levels, fmt=fmt, width_in=args.width, dpi=args.dpi,
                                             columns=args.levels))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
