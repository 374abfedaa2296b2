"""Zoom videos into the trainability boundary, from one recomputed grid per factor-2 zoom level.

A grid per frame would cost far too much; like the authors' video, frames between two keyframes are cut out of
the outer one and blended with the inner one as the zoom comes closer, so a video of L levels costs L + 1 grids
and the detail never runs out. The task writes ``video.mp4`` (H.264, imageio-ffmpeg), ``video.gif``,
``preview.png`` (the deepest keyframe), ``views.json`` and ``spec.json``; :func:`video_files` reads them back.

Frames are composed at the keyframes' resolution times ``upscale``, each keyframe pixel drawn as a block (nearest
neighbour wherever a keyframe is enlarged): a 32-pixel keyframe at ``upscale=8`` is a crisp 256-pixel frame whose
first frame is that keyframe's picture with every pixel an 8 × 8 block, never a blurred enlargement.
:func:`size_text` states it in words for a caption.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from engine.errors import Cancelled
from engine.png import png_bytes
from engine.specs import SpecMixin, check_items, check_value, nested_spec, spec_field
from engine.trainability.colours import colorize, equalized_values
from engine.trainability.grid import run_grid
from engine.trainability.spec import AXIS_LIMIT, GridSpec, _check_resolvable
from engine.trainability.views import (View, check_view, interpolate_view, keyframe_views, levels_between,
                                       same_view, view_of, view_spec)

FORMATS = ("mp4", "gif")  # the registry of output formats a page can offer
MAX_LEVELS = 40  # factor-2 levels in one video; 2^40 is far below float64 resolution of a range anyway
MAX_FRAMES = 4000
MAX_PATH = 1000  # views in a zoom path (repeats included); 40 levels need at most 41 distinct ones
MAX_UPSCALE = 16  # frame pixels per keyframe pixel: 32-px keyframes up to 512 px
MAX_FRAME_SIDE = 4096  # pixels per frame side (1024-px keyframes x 4, the largest frame before upscale grew)
PREVIEW = "preview.png"
_GRID_FIELDS = frozenset(f.name for f in dataclasses.fields(GridSpec))


@dataclasses.dataclass(frozen=True)
class VideoSpec(SpecMixin):
    """A zoom video: the physics and current view (``grid``, whose resolution is ignored), where the zoom starts
    (the preset's full range, or a ``path`` of views, outermost first), and the video's form."""

    grid: GridSpec
    full_x_range: tuple[float, float] | None = spec_field(
        None, range=(-AXIS_LIMIT, AXIS_LIMIT), help="Where the zoom starts on x (log10; the preset's full range).")
    full_y_range: tuple[float, float] | None = spec_field(
        None, range=(-AXIS_LIMIT, AXIS_LIMIT), help="Where the zoom starts on y (log10; the preset's full range).")
    path: tuple[tuple[float, float, float, float], ...] = ()
    resolution: tuple[int, int] = spec_field(
        (128, 128), range=(16, 1024), label="Keyframe resolution",
        help="Pixels per side of each keyframe (even numbers); frames are this times the upscale.")
    upscale: int = spec_field(
        2, range=(1, MAX_UPSCALE),
        help="Frame pixels per keyframe pixel: each keyframe pixel becomes an upscale × upscale block (nearest "
             "neighbour), so the video is sharp at its own size.")
    frames_per_level: int = spec_field(
        16, range=(2, 240), label="Frames per ×2 level", help="Frames between two keyframes a factor 2 apart.")
    fps: int = spec_field(16, range=(1, 60), label="Frames per second", help="Playback speed.")
    formats: tuple[str, ...] = ("mp4", "gif")
    zoom_out: bool = spec_field(False, label="Zoom out instead of in", help="Play the zoom backwards.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", nested_spec("grid", GridSpec, self.grid))
        if isinstance(self.resolution, (int, np.integer)) and not isinstance(self.resolution, (bool, np.bool_)):
            object.__setattr__(self, "resolution", (int(self.resolution), int(self.resolution)))
        self.check_fields()
        if any(r % 2 for r in self.resolution):
            raise ValueError(f"resolution: an even number of pixels per axis (n_x, n_y), got {self.resolution!r}")
        formats = check_items("formats", self.formats, lambda n, v: check_value(n, v, str, choices=FORMATS),
                              min_len=1, max_len=len(FORMATS), what=f"formats of {FORMATS}")
        if len(set(formats)) != len(formats):
            raise ValueError(f"formats: a non-empty selection of {FORMATS} without repeats, got {formats!r}")
        object.__setattr__(self, "formats", formats)
        if max(self.frame_size) > MAX_FRAME_SIDE:
            raise ValueError(f"upscale: frames of at most {MAX_FRAME_SIDE} pixels a side, got "
                             f"{self.resolution[0]} × {self.resolution[1]} keyframes × {self.upscale} = "
                             f"{self.frame_size[0]} × {self.frame_size[1]}")
        path = check_items("path", self.path, _path_view, max_len=MAX_PATH, what="views (x0, x1, y0, y1)")
        for i, v in enumerate(path):  # each becomes a keyframe grid at this resolution: float64 must resolve it
            _check_resolvable(f"path[{i}]", (v[0], v[1]), self.resolution[0])
            _check_resolvable(f"path[{i}]", (v[2], v[3]), self.resolution[1])
        object.__setattr__(self, "path", path)
        for name in ("full_x_range", "full_y_range"):
            r = getattr(self, name)
            if r is not None and not r[0] < r[1]:
                raise ValueError(f"{name}: needs finite lo < hi, got {r!r}")
        for name in ("full_x_range", "full_y_range"):
            if not path and getattr(self, name) is None:
                raise ValueError(f"{name}: give the preset's full range (full_x_range and full_y_range), or a "
                                 "path of at least two views")
        views = self.waypoints()
        if len(views) < 2:
            raise ValueError("path: the zoom needs two different views (the current view is the full range: "
                             "zoom in first)")
        n_levels = sum(levels_between(a, b) for a, b in zip(views[:-1], views[1:]))  # keyframes, none built
        if n_levels > MAX_LEVELS:
            raise ValueError(f"path: {n_levels} factor-2 zoom levels; at most {MAX_LEVELS} fit in one video")
        if n_levels * int(self.frames_per_level) + 1 > MAX_FRAMES:
            raise ValueError(f"frames_per_level: {n_levels} levels x {self.frames_per_level} frames exceeds "
                             f"{MAX_FRAMES} frames")

    def waypoints(self) -> list[View]:
        """The views the zoom passes through, in play order before ``zoom_out`` (repeats removed)."""
        if self.path:
            raw = list(self.path)
        else:
            raw = [(*self.full_x_range, *self.full_y_range), view_of(self.grid)]
        out: list[View] = []
        for v in raw:
            if not out or not same_view(out[-1], v):
                out.append(v)
        return out

    def keyframes(self) -> list[View]:
        """Every keyframe view (one per factor-2 level, plus the ends)."""
        return keyframe_views(self.waypoints())

    @property
    def n_frames(self) -> int:
        return (len(self.keyframes()) - 1) * int(self.frames_per_level) + 1

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of a frame in pixels."""
        return (self.resolution[0] * int(self.upscale), self.resolution[1] * int(self.upscale))

    def root_grid(self) -> GridSpec:
        """The zoom's outermost view at the keyframe resolution: the root whose pixel lattice the keyframes lie
        on (``views.view_spec``), as the explorer's zoom levels lie on their root's."""
        root = self.waypoints()[0]
        changes: dict = dict(x_range=(root[0], root[1]), y_range=(root[2], root[3]),
                             resolution=tuple(self.resolution))
        if "lattice" in _GRID_FIELDS:  # the current view's own lattice would contradict the new ranges
            changes["lattice"] = None
        return dataclasses.replace(self.grid, **changes)

    def keyframe_grid(self, view: View) -> GridSpec:
        """The GridSpec that computes one keyframe: the same physics at the keyframe's view and resolution, in
        float64 where float32 cannot resolve that view (the explorer's rule). It is built like an explorer
        level (``views.view_spec`` on the root view), so a keyframe the explorer already computed at this
        resolution has the same store key and is taken from the store instead of trained again."""
        return view_spec(self.root_grid(), view)[0]


def _sides(size: Sequence[int]) -> str:
    return f"{size[0]}" if size[0] == size[1] else f"{size[0]} × {size[1]}"


def size_text(spec: VideoSpec) -> str:
    """How a video's frames are made from its keyframes, for a caption: e.g. ``"32-px keyframes upscaled ×8
    (nearest neighbour) to 256 px"``."""
    keys, frame = _sides(spec.resolution), _sides(spec.frame_size)
    if int(spec.upscale) == 1:
        return f"{keys}-px keyframes, frames at their own size ({frame} px)"
    return f"{keys}-px keyframes upscaled ×{int(spec.upscale)} (nearest neighbour) to {frame} px"


def _path_view(name: str, value: object) -> View:
    """One view of a zoom path: four finite numbers within the axes' limits, x0 < x1 and y0 < y1."""
    def number(item: str, v: object) -> float:
        return check_value(item, v, float, range=(-AXIS_LIMIT, AXIS_LIMIT))

    return check_view(name, check_items(name, value, number, min_len=4, max_len=4, what="numbers (x0, x1, y0, y1)"))


# ------------------------------------------------------------------------------------------------ frames
FEATHER = 0.08  # the inner keyframe fades in over this fraction of the frame's side at its border


def _resample_matrix(coords: np.ndarray, n_src: int, step: float) -> np.ndarray:
    """Rows of weights turning ``n_src`` source samples into samples at continuous source ``coords``.

    Nearest neighbour when the frame enlarges the keyframe (``step`` < 1 source pixel per frame pixel: each
    network's pixel stays one sharp block, as the map shows it); when it shrinks it, a tent filter ``step``
    source pixels wide, an area-like average so fractal detail does not alias into flicker. Coordinates beyond
    the edges use the edge pixel.
    """
    idx = np.arange(n_src, dtype=np.float64)
    c = np.clip(coords, 0.0, n_src - 1.0)
    if step < 1.0:
        return (idx[None, :] == np.rint(c)[:, None]).astype(np.float64)
    w = np.maximum(0.0, 1.0 - np.abs(idx[None, :] - c[:, None]) / float(step))
    w /= w.sum(axis=1, keepdims=True)
    return w


@dataclasses.dataclass
class _Placement:
    """How one keyframe lands on a frame: resampling matrices, soft coverage and the pixels in view."""

    wy: np.ndarray  # (frame h, key h)
    wx: np.ndarray  # (frame w, key w)
    cover: np.ndarray  # (frame h, frame w) in [0, 1]: 1 well inside the keyframe, 0 outside, a ramp between
    in_view: np.ndarray  # (key h, key w) bool: keyframe pixels inside the frame's view


def frame_positions(lo: float, hi: float, n: int, upscale: int = 1) -> np.ndarray:
    """Where the ``n * upscale`` pixels of a frame side sit, for a view ``(lo, hi)`` of ``n`` cells.

    Cell j of an n-cell view is centred on lo + j * (hi - lo) / (n - 1), as ``logspace(lo, hi, n)`` places grid
    points, and spans one spacing; each cell is split into ``upscale`` frame pixels, which sit at the centres of
    those parts. At ``upscale=1`` these are the cell centres themselves."""
    k = int(upscale)
    j = np.arange(n * k, dtype=np.float64)
    return lo + ((j + 0.5) / k - 0.5) * (hi - lo) / max(n - 1, 1)


def _place(key_shape: tuple[int, int], key: View, frame: View, out_shape: tuple[int, int],
           feather_px: float, upscale: int = 1) -> _Placement:
    """A frame of ``out_shape`` cells at ``upscale`` pixels each (see :func:`frame_positions`) showing ``frame``;
    the keyframe's pixels sit at its grid points. ``feather_px`` is the width (frame pixels) of the coverage
    ramp."""
    h, w = out_shape
    kh, kw = key_shape
    k = int(upscale)
    per_axis = []
    for n_out, n_key, lo, hi, klo, khi in ((h, kh, frame[2], frame[3], key[2], key[3]),
                                          (w, kw, frame[0], frame[1], key[0], key[1])):
        f = frame_positions(lo, hi, n_out, k)
        c = (f - klo) / (khi - klo) * (n_key - 1)
        step = (hi - lo) / (khi - klo) * (n_key - 1) / max(n_out - 1, 1) / k  # key pixels per frame pixel
        # distance (in frame pixels) from each frame pixel inward to the keyframe's edge
        inside = np.minimum(c + 0.5, n_key - 0.5 - c) / max(step, 1e-300)
        ramp = np.clip(inside / feather_px, 0.0, 1.0) if feather_px > 0 else (inside >= 0).astype(np.float64)
        kpos = klo + np.arange(n_key) * (khi - klo) / max(n_key - 1, 1)
        pad = 0.5 * (hi - lo) / max(n_out - 1, 1)
        per_axis.append((_resample_matrix(c, n_key, step), ramp, (kpos >= lo - pad) & (kpos <= hi + pad)))
    (wy, ry, vy), (wx, rx, vx) = per_axis
    return _Placement(wy, wx, ry[:, None] * rx[None, :], vy[:, None] & vx[None, :])


def _resample(rgb: np.ndarray, p: _Placement) -> np.ndarray:
    """Separable resampling (two matrix products): rows with ``wy``, then columns with ``wx``."""
    wxt = np.ascontiguousarray(p.wx.T)
    return np.stack([p.wy @ np.ascontiguousarray(rgb[..., c]) @ wxt for c in range(rgb.shape[2])], axis=-1)


def compose_frame(outer: np.ndarray, outer_view: View, inner: np.ndarray, inner_view: View, view: View, u: float,
                  out_shape: tuple[int, int], feather: float = FEATHER, upscale: int = 1) -> np.ndarray:
    """One in-between frame at fraction ``u`` of the way from keyframe ``outer`` to keyframe ``inner``.

    ``outer`` and ``inner`` are *measures* (rows = y ascending). The frame shows ``view``: the outer keyframe
    cut and resized, blended with weight ``u`` with the inner keyframe where that covers the frame (fading in
    over a border that narrows as u -> 1). Both keyframes are coloured with one equalisation for the frame,
    from the pixels in view weighted (1 - u) for the outer and u for the inner keyframe, so equal measures get
    equal colours (no visible seam) and the colours move continuously: at u = 0 the frame is exactly the outer
    keyframe's own picture, at u = 1 the inner's. Returns float RGB (h * upscale, w * upscale, 3), rows = y
    ascending: ``out_shape`` cells, each ``upscale`` pixels a side (at u = 0 of a frame showing a keyframe's
    own view, exactly that keyframe's picture enlarged by nearest neighbour). For a zoom out or a pan (neither
    keyframe covers everything) each pixel blends whichever keyframes cover it.
    """
    h, w = out_shape
    fpx = feather * min(h, w) * int(upscale) * (1.0 - u)
    pa = _place(outer.shape, outer_view, view, out_shape, fpx, upscale)
    pb = _place(inner.shape, inner_view, view, out_shape, fpx, upscale)
    if u <= 0.0:  # exactly the outer keyframe's own picture (the same code path as render_measure)
        return _resample(colorize(equalized_values(outer)).astype(np.float64), pa)
    ref_a, ref_b = outer[pa.in_view], inner[pb.in_view]
    if ref_a.size == 0:
        ref_a = outer.ravel()
    if ref_b.size == 0:
        ref_b = inner.ravel()
    reference = np.concatenate([ref_a, ref_b])
    weights = np.concatenate([np.full(ref_a.size, (1.0 - u) / ref_a.size), np.full(ref_b.size, u / ref_b.size)])
    a = _resample(colorize(equalized_values(outer, reference, reference_weights=weights)).astype(np.float64), pa)
    b = _resample(colorize(equalized_values(inner, reference, reference_weights=weights)).astype(np.float64), pb)
    wa = (1.0 - u) * pa.cover
    wb = u * pb.cover
    none = (wa + wb) <= 1e-12
    wa = np.where(none, 1.0 - u, wa)
    wb = np.where(none, u, wb)
    return (wa[..., None] * a + wb[..., None] * b) / (wa + wb)[..., None]


def make_frames(keyframe_measures: Sequence[np.ndarray], views: Sequence[View], frames_per_level: int,
                out_shape: tuple[int, int], cancel=None, upscale: int = 1) -> list[np.ndarray]:
    """All frames of the video from its keyframe measures, as uint8 RGB with the top row = largest y.

    ``len(views) - 1`` levels of ``frames_per_level`` frames each, then the last keyframe: the first frame is
    keyframe 0's view and the last the final view. A frame is ``out_shape`` (rows, columns) cells of
    ``upscale`` × ``upscale`` pixels each.
    """
    if len(keyframe_measures) != len(views) or len(views) < 2:
        raise ValueError("views: need one keyframe measure per view, and at least two views")
    with _single_threaded_blas():
        return _make_frames(keyframe_measures, views, frames_per_level, out_shape, cancel, int(upscale))


@contextlib.contextmanager
def _single_threaded_blas():
    """Frame products are small (a few hundred rows): BLAS threads only spin, and on a busy 2-core machine
    they made each frame 20x slower (measured: 57 ms vs 2.7 ms for one 256x128x256 product pair)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it frames are merely slower
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _make_frames(keyframe_measures, views, frames_per_level, out_shape, cancel, upscale) -> list[np.ndarray]:
    frames = []
    for k in range(len(views) - 1):
        for j in range(frames_per_level):
            if cancel is not None and cancel.is_set():
                raise Cancelled("zoom video cancelled while composing frames")
            u = j / frames_per_level
            view = interpolate_view(views[k], views[k + 1], u)
            frames.append(_to_uint8(compose_frame(keyframe_measures[k], views[k], keyframe_measures[k + 1],
                                                  views[k + 1], view, u, out_shape, upscale=upscale)))
    last = keyframe_measures[-1]
    frames.append(_to_uint8(compose_frame(last, views[-1], last, views[-1], views[-1], 0.0, out_shape,
                                          upscale=upscale)))
    return frames


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(np.rint(frame), 0, 255).astype(np.uint8)[::-1])


# ------------------------------------------------------------------------------------------------ writing
def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: int) -> None:
    """H.264 MP4 (yuv420p, so every browser plays it); frame sides must be even."""
    import imageio.v2 as imageio

    writer = imageio.get_writer(str(path), format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                pixelformat="yuv420p", quality=8, macro_block_size=2,
                                ffmpeg_log_level="error")
    try:
        for f in frames:
            writer.append_data(f)
    finally:
        writer.close()


def write_gif(path: Path, frames: Sequence[np.ndarray], fps: int) -> None:
    """Looping GIF; GIF timing is in 10 ms steps, so the frame time is rounded to that."""
    from PIL import Image

    duration = max(20, int(round(100.0 / fps)) * 10)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(str(path), format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0,
                   optimize=False, disposal=1)


class _KeyframeSource:
    """The video's own finished keyframes, then ``sources``, as one ``GridSource``: a keyframe on the root's
    lattice shares pixels with the keyframe before it (a quarter, for a 2x zoom snapped to even indices) and
    with stored grids, and trains only the rest."""

    def __init__(self, sources=None):
        self.sources = sources
        self.done: list[tuple[GridSpec, np.ndarray, np.ndarray]] = []  # (grid, measure, computed exactly)

    def similar(self, spec: GridSpec):
        yield from reversed(self.done)
        if self.sources is not None:
            yield from self.sources.similar(spec)

    def exact(self, spec: GridSpec) -> np.ndarray | None:
        for grid, measure, _ in self.done:
            if grid == spec:
                return measure
        return self.sources.exact(spec) if self.sources is not None else None


def _stored_measure(measure, spec: GridSpec) -> np.ndarray | None:
    """A stored keyframe's measure as float64, or None when it does not fit ``spec`` (then it is computed)."""
    if measure is None:
        return None
    measure = np.asarray(measure)
    if measure.shape != spec.shape or measure.dtype.kind != "f" or not np.all(np.isfinite(measure)):
        return None
    return measure.astype(np.float64)


def run_to_dir(spec: VideoSpec, out_dir: Path, progress: Callable | None = None, cancel=None, *, sources=None,
               scheduler: str | None = None) -> None:
    """Compute the keyframes with ``run_grid``, compose the frames, write the video files into ``out_dir``.

    ``sources`` (a ``GridSource``, e.g. the job runner's stored grids): a keyframe whose grid is already stored
    under its own key is taken from there, bit for bit what training it would give, instead of trained again;
    pixels that coincide with a stored grid's or an earlier keyframe's are taken too (``reuse.known_pixels``).
    ``views.json`` says how many keyframes and pixels were reused. ``scheduler``: where the keyframe grids run
    (a Dask scheduler address; None = ``$FRACTAL_LAB_DASK_SCHEDULER``, unset: this machine).
    Progress: 90% for the keyframes (each grid's own progress folded in; a reused keyframe counts as done), the
    rest for frames and encoding; an info dict ``{"stage", "keyframe", "keyframes", "reused"}`` marks each
    finished keyframe.
    """
    from engine.trainability.cluster import scheduler_address
    from engine.trainability.reuse import known_pixels

    out_dir = Path(out_dir)
    views = spec.keyframes()
    n_key = len(views)
    address = scheduler_address(scheduler)
    source = _KeyframeSource(sources)

    def report(fraction: float, info: dict | None = None) -> None:
        if progress is not None:
            progress(min(1.0, max(0.0, fraction)), info)

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("zoom video cancelled")

    images: list[np.ndarray] = []
    done: dict[View, np.ndarray] = {}
    reused = reused_pixels = 0
    for k, view in enumerate(views):
        check()
        taken = False
        if view in done:  # a path that revisits a view reuses its keyframe
            images.append(done[view])
        else:
            def grid_progress(f, *_, k=k):
                report(0.9 * (k + float(f)) / n_key)

            grid = spec.keyframe_grid(view)
            measure = _stored_measure(sources.exact(grid), grid) if sources is not None else None
            if measure is not None:
                taken = True
                reused += 1
                reused_pixels += measure.size
                # a stored refined grid's inferred pixels are not known exactly: lend none of them onwards
                computed = np.full(measure.shape, grid.refine == "exact")
            else:
                known, mask = known_pixels(grid, source)
                result = run_grid(grid, progress=grid_progress, cancel=cancel, scheduler=address,
                                  known=(known, mask) if mask.any() else None)
                measure = np.asarray(result.measure, dtype=np.float64)
                computed = np.asarray(result.computed, dtype=bool)
                reused_pixels += int(result.reused)
            source.done.append((grid, measure, computed))
            done[view] = measure
            images.append(measure)
        report(0.9 * (k + 1) / n_key, {"stage": "keyframe", "keyframe": k + 1, "keyframes": n_key, "reused": taken})

    frames = make_frames(images, views, int(spec.frames_per_level), (spec.resolution[1], spec.resolution[0]),
                         cancel=cancel, upscale=int(spec.upscale))
    if spec.zoom_out:
        frames = frames[::-1]
    report(0.93, {"stage": "frames", "frames": len(frames)})
    check()
    if "mp4" in spec.formats:
        write_mp4(out_dir / "video.mp4", frames, int(spec.fps))
        report(0.96, {"stage": "mp4"})
    check()
    if "gif" in spec.formats:
        write_gif(out_dir / "video.gif", frames, int(spec.fps))
        report(0.99, {"stage": "gif"})
    (out_dir / PREVIEW).write_bytes(png_bytes(frames[-1] if not spec.zoom_out else frames[0]))
    (out_dir / "views.json").write_text(json.dumps({
        "keyframes": [list(v) for v in views], "frames": len(frames), "frames_per_level": spec.frames_per_level,
        "fps": spec.fps, "frame_size": list(spec.frame_size), "keyframe_size": list(spec.resolution),
        "upscale": int(spec.upscale), "resampling": "nearest", "zoom_out": spec.zoom_out,
        "reused_keyframes": reused, "computed_keyframes": len(done) - reused, "reused_pixels": reused_pixels,
        "pixels": sum(m.size for m in done.values())}, indent=2))  # not where it ran: the same video anywhere
    (out_dir / "spec.json").write_text(spec.to_json(indent=2))
    report(1.0, {"stage": "done", "frames": len(frames), "reused_keyframes": reused})


def reused_keyframes(result_dir: Path) -> int | None:
    """How many keyframes of a finished video were taken from the store (None for videos made before this was
    recorded, or a folder without a readable ``views.json``)."""
    try:
        value = json.loads((Path(result_dir) / "views.json").read_text()).get("reused_keyframes")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def video_files(result_dir: Path) -> dict[str, bytes]:
    """The video files of a finished ``zoom_video`` result, by format (``{"mp4": ..., "gif": ...}``)."""
    out = {}
    for fmt in FORMATS:
        path = Path(result_dir) / f"video.{fmt}"
        if path.exists():
            out[fmt] = path.read_bytes()
    return out


def thumbnail(result_dir: Path) -> bytes | None:
    """The deepest keyframe as PNG (the store's picture of a video), or None if there is none."""
    path = Path(result_dir) / PREVIEW
    return path.read_bytes() if path.exists() else None
