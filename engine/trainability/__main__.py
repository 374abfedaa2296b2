"""``python -m engine.trainability --preset tanh --resolution 64 --out DIR``: a grid into a folder, the same task
the explorer's jobs run; ``python -m engine.trainability video --spec video_spec.json --out DIR``: a zoom video.
GridSpec's flags are generated from its field declarations."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from engine.cli import ArgumentParser, add_spec_arguments, cli_main, fail, path_arg, writable_dir
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
                    "(`python -m engine.trainability video --help`: a zoom video.)")
    ap.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                    help=f"starting point: its spec, before the flags below (default: {DEFAULT_PRESET})")
    ap.add_argument("--out", required=True, type=path_arg, help="output directory")
    add_spec_arguments(ap, GridSpec, exclude=("resolution",), defaults=PRESETS[DEFAULT_PRESET].spec)
    ap.add_argument("--resolution", type=int, nargs="+", metavar="N",
                    help=field_info(GridSpec, "resolution").meta.help)
    ap.add_argument("--full-batch", action="store_true", help="clear the preset's batch size")
    return ap.parse_args(argv)


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
    out = writable_dir("--out", args.out)
    bar, progress = _progress_bar()
    with bar:
        run_video(spec, out, progress=progress)
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0


@cli_main(PROG)
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["video"]:
        return video_main(argv[1:])
    args = _parse_args(argv)
    try:
        spec, raised = promote_dtype(spec_from_args(args))
    except ValueError as exc:
        fail(PROG, exc)
    out = writable_dir("--out", args.out)
    if raised:
        print("note: float32 cannot tell this view's pixels apart; computing in float64")
    print(f"{spec.n_x}x{spec.n_y} grid, {network_steps(spec) / 1e6:.3g} M network-steps, "
          f"about {estimate_seconds(spec):.0f} s; writing to {args.out}")
    t0 = time.perf_counter()
    bar, progress = _progress_bar()
    with bar:
        run_to_dir(spec, out, progress=progress)
    print(f"done in {time.perf_counter() - t0:.1f} s: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
