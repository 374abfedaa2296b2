"""``python -m engine.trainability --preset tanh --resolution 64 --out DIR``: a grid into a folder, the same task
the explorer's jobs run; ``python -m engine.trainability video --spec video_spec.json --out DIR``: a zoom video;
``python -m engine.trainability figure --result DIR [--result DIR2 ...] --fmt pdf --dpi 300 --width 7 --out FILE``:
a figure for a paper from stored grid folders (one folder: the map; several, outermost first: the zoom path).
GridSpec's flags are generated from its field declarations."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from engine.cli import ArgumentParser, add_spec_arguments, cli_main, fail, path_arg, writable_dir, writable_file
from engine.specs import field_info, fields_of
from engine.trainability.cost import estimate_seconds, network_steps
from engine.trainability.presets import DEFAULT_PRESET, PRESETS, preset
from engine.trainability.results import FILES, run_to_dir
from engine.trainability.spec import GridSpec
from engine.trainability.views import promote_dtype


PROG = "python -m engine.trainability"
MAX_SPEC_FILE = 1 << 20  # a VideoSpec is a few hundred bytes of JSON


def _parse_args(argv=None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog=PROG,
        description=f"Compute a trainability grid (Sohl-Dickstein 2024) and write {', '.join(FILES)} into --out. "
                    "(`python -m engine.trainability video --help`: a zoom video; `... figure --help`: a figure "
                    "for a paper from computed grids.)")
    ap.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                    help=f"starting point: its spec, before the flags below (default: {DEFAULT_PRESET})")
    ap.add_argument("--out", required=True, type=path_arg, help="output directory")
    add_spec_arguments(ap, GridSpec, exclude=("resolution",), defaults=PRESETS[DEFAULT_PRESET].spec)
    ap.add_argument("--resolution", type=int, nargs="+", metavar="N",
                    help=field_info(GridSpec, "resolution").meta.help)
    ap.add_argument("--full-batch", action="store_true", help="clear the preset's batch size")
    _add_scheduler(ap)
    return ap.parse_args(argv)


def _add_scheduler(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--scheduler", metavar="ADDRESS",
                    help="Dask scheduler to compute on, tcp://HOST:PORT, or 'local' for this machine (default: "
                         "$FRACTAL_LAB_DASK_SCHEDULER, else local); the pixels do not depend on where they ran")


def spec_from_args(args: argparse.Namespace) -> GridSpec:
    """The GridSpec a command line asks for: the preset, with every flag that was given applied."""
    over: dict[str, Any] = {info.name: getattr(args, info.name) for info in fields_of(GridSpec)
                            if info.name != "resolution" and info.name in vars(args)}
    if args.full_batch:
        over["batch_size"] = None
    if args.resolution is not None:
        if len(args.resolution) not in (1, 2):
            raise ValueError("resolution: give one integer (square) or two (n_x n_y)")
        r = args.resolution
        over["resolution"] = (r[0], r[0]) if len(r) == 1 else (r[0], r[1])
    return preset(args.preset, **over)


def _progress_bar():
    from tqdm import tqdm

    bar = tqdm(total=1000, unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining}")

    def progress(fraction, info=None):
        bar.update(max(0, int(round(fraction * 1000)) - bar.n))

    return bar, progress


def video_main(argv=None) -> int:
    from engine.trainability.video import VideoSpec
    from engine.trainability.video import run_to_dir as run_video

    ap = ArgumentParser(prog=f"{PROG} video",
                        description="Render a zoom video into --out (video.mp4, video.gif, preview.png).")
    ap.add_argument("--spec", required=True, type=path_arg,
                    help="a VideoSpec as JSON (e.g. a zoom_video job's spec.json)")
    ap.add_argument("--out", required=True, type=path_arg, help="output folder (created if missing)")
    _add_scheduler(ap)
    args = ap.parse_args(argv)
    if Path(args.spec).is_dir():
        raise ValueError(f"--spec: {args.spec} is a folder; give a VideoSpec JSON file")
    with open(args.spec, "rb") as fh:
        raw = fh.read(MAX_SPEC_FILE + 1)
    if len(raw) > MAX_SPEC_FILE:
        raise ValueError(f"--spec: {args.spec} is larger than {MAX_SPEC_FILE:,} bytes; a VideoSpec is a small JSON")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"--spec: {args.spec} is not UTF-8 JSON text") from None
    spec = VideoSpec.from_json(text)
    options = _scheduler_option(run_video, args.scheduler)
    out = writable_dir("--out", args.out)
    bar, progress = _progress_bar()
    with bar:
        run_video(spec, out, progress=progress, **options)
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0


def _scheduler_option(task, value: str | None) -> dict[str, Any]:
    """``{"scheduler": address}`` for ``task`` (the address checked first: a bad one is one line, exit 2);
    empty when no --scheduler was given and the environment names none."""
    import inspect

    from engine.trainability.cluster import scheduler_address

    address = scheduler_address(value)  # ValueError naming the setting and the form
    if address is None:
        return {"scheduler": "local"} if "scheduler" in inspect.signature(task).parameters else {}
    if "scheduler" not in inspect.signature(task).parameters:
        raise ValueError("--scheduler: this command runs on this machine only")
    return {"scheduler": address}


def _defaults(fn) -> dict[str, Any]:
    """A function's keyword defaults (the figure options' defaults are declared once, in figures.py)."""
    import inspect

    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def figure_main(argv=None) -> int:
    from engine.io import write_bytes_atomic
    from engine.trainability import figures
    from engine.trainability.results import load

    ap = ArgumentParser(
        prog=f"{PROG} figure",
        description="A figure for a paper from computed grid folders (e.g. `--out` of this CLI, or a grid's folder "
                    "in the store): one --result draws its map with axes in log10 units, a colour bar of the "
                    "measure and the view in the title; several, outermost first, draw the zoom path as panels, "
                    "each with the next level's box.")
    ap.add_argument("--result", required=True, action="append", type=path_arg, metavar="DIR",
                    help=f"a grid result folder; repeat for a zoom path (at most {figures.MAX_LEVELS})")
    ap.add_argument("--out", required=True, type=path_arg, help="the figure file to write")
    ap.add_argument("--fmt", type=str.lower, choices=figures.FORMATS,
                    help="png, svg or pdf (default: the --out file's extension)")
    lo, hi = figures.SIZE_RANGE_IN
    one, path = _defaults(figures.map_figure), _defaults(figures.zoom_path_figure)
    ap.add_argument("--width", type=float, metavar="INCHES",
                    help=f"width in inches, {lo:g}..{hi:g} (default: {one['width_in']:g} for a map, "
                         f"{path['width_in']:g} for a zoom path)")
    ap.add_argument("--height", type=float, metavar="INCHES",
                    help=f"height of a map in inches, {lo:g}..{hi:g} (default {one['height_in']:g}; a zoom "
                         "path's height follows from its width)")
    ap.add_argument("--dpi", type=float, help=f"dots per inch, {figures.DPI_RANGE[0]}..{figures.DPI_RANGE[1]} "
                                              f"(default {one['dpi']:g})")
    ap.add_argument("--columns", type=int, help=f"panels per row of a zoom path, 1..{figures.MAX_COLUMNS} "
                                                "(default: up to 4)")
    ap.add_argument("--title", help="replaces the experiment line of the title (the view is always stated)")
    args = ap.parse_args(argv)
    fmt = args.fmt or Path(args.out).suffix.lower().lstrip(".")
    if fmt not in figures.FORMATS:
        raise ValueError(f"--fmt: must be one of {', '.join(figures.FORMATS)} (or an --out ending in one), "
                         f"got {Path(args.out).suffix or 'no extension'}")
    if len(args.result) > figures.MAX_LEVELS:
        raise ValueError(f"--result: at most {figures.MAX_LEVELS} folders, got {len(args.result)}")
    zoom = len(args.result) > 1
    if zoom and args.height is not None:
        raise ValueError("--height: a zoom path's height follows from its width and panels; give --width only")
    if not zoom and args.columns is not None:
        raise ValueError("--columns: applies to a zoom path (several --result folders)")
    out = writable_file("--out", args.out)
    levels = []
    for folder in args.result:
        if not Path(folder).is_dir():
            raise ValueError(f"--result: {folder} is not a folder (give a grid's result folder)")
        grid = load(folder)
        levels.append((grid.spec, grid.measure))
    given = {k: v for k, v in (("width_in", args.width), ("height_in", args.height), ("dpi", args.dpi),
                               ("columns", args.columns), ("title", args.title)) if v is not None}
    if zoom:
        data = figures.zoom_path_figure(levels, fmt=fmt, **given)
    else:
        data = figures.map_figure(*levels[0], fmt=fmt, **given)
    try:
        write_bytes_atomic(out, data)
    except OSError as exc:
        raise ValueError(f"--out: cannot write {out} ({exc.strerror or exc})") from None
    what = f"zoom path of {len(levels)} levels" if zoom else "map"
    print(f"wrote the {what} to {out} ({fmt}, {len(data):,} bytes)")
    return 0


@cli_main(PROG)
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["video"]:
        return video_main(argv[1:])
    if argv[:1] == ["figure"]:
        return figure_main(argv[1:])
    args = _parse_args(argv)
    try:
        spec, raised = promote_dtype(spec_from_args(args))
    except ValueError as exc:
        fail(PROG, exc)
    options = _scheduler_option(run_to_dir, args.scheduler)
    out = writable_dir("--out", args.out)
    if raised:
        print("note: float32 cannot tell this view's pixels apart; computing in float64")
    print(f"{spec.n_x}x{spec.n_y} grid, {network_steps(spec) / 1e6:.3g} M network-steps, "
          f"about {estimate_seconds(spec):.0f} s; writing to {args.out}")
    if options.get("scheduler") not in (None, "local"):
        print(f"computing on the Dask cluster at {options['scheduler']}")
    t0 = time.perf_counter()
    bar, progress = _progress_bar()
    with bar:
        run_to_dir(spec, out, progress=progress, **options)
    print(f"done in {time.perf_counter() - t0:.1f} s: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
