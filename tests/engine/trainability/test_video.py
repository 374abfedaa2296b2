"""Zoom video: view interpolation, keyframe planning, frame composition, and a real job's MP4 and GIF."""

import dataclasses
import json
import threading

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from engine.errors import Cancelled
from engine.trainability import GridSpec
from engine.trainability.colours import render_measure
from engine.trainability.video import VideoSpec, compose_frame, make_frames, run_to_dir
from engine.trainability.views import interpolate_view, keyframe_views, levels_between

FULL = (-3.0, 6.0, -3.0, 6.0)


def analytic_measure(view, n_x, n_y):
    """A smooth signed field with plenty of boundary, sampled like a grid (endpoints included), rows = y."""
    x = np.linspace(view[0], view[1], n_x)
    y = np.linspace(view[2], view[3], n_y)
    xx, yy = np.meshgrid(x, y)
    f = np.sin(2.3 * xx + 0.7 * np.sin(5 * yy)) + np.cos(1.7 * yy) * np.cos(3.1 * xx) - 0.2
    return np.where(f < 0, -(1.0 + 50 * np.abs(f)), 1.0 + 20 * np.abs(f))


def small_grid(view=(1.0, 1.5625, 0.5, 1.0625)) -> GridSpec:
    base = GridSpec()
    return dataclasses.replace(base, x_range=(view[0], view[1]), y_range=(view[2], view[3]),
                               resolution=(16, 16), steps=20)


def test_interpolated_views_zoom_geometrically_about_a_fixed_point():
    a, b = FULL, (1.0, 1.5625, 0.5, 1.0625)  # 16x smaller on both axes
    assert interpolate_view(a, b, 0.0) == a and interpolate_view(a, b, 1.0) == b
    prev = a
    for u in np.linspace(0.05, 1.0, 20):
        v = interpolate_view(a, b, float(u))
        width = v[1] - v[0]
        assert width == pytest.approx(9.0 * (0.5625 / 9.0) ** u)  # constant zoom speed in log scale
        assert prev[0] - 1e-12 <= v[0] and v[1] <= prev[1] + 1e-12  # each view inside the previous one
        assert prev[2] - 1e-12 <= v[2] and v[3] <= prev[3] + 1e-12
        prev = v
    # a pure pan moves the view linearly, keeping its size
    pan = interpolate_view((0.0, 1.0, 0.0, 1.0), (2.0, 3.0, 0.0, 1.0), 0.25)
    assert pan == pytest.approx((0.5, 1.5, 0.0, 1.0))


def test_keyframes_one_per_factor_two_level():
    inner = (1.0, 1.0 + 9.0 / 32, 0.5, 0.5 + 9.0 / 32)  # 2^5 zoom
    views = keyframe_views([FULL, inner])
    assert len(views) == 6 and views[0] == FULL and views[-1] == inner
    for a, b in zip(views[:-1], views[1:]):
        assert (a[1] - a[0]) / (b[1] - b[0]) == pytest.approx(2.0)
        assert a[0] <= b[0] and b[1] <= a[1] and a[2] <= b[2] and b[3] <= a[3]
    # not a power of two: ceil(log2(ratio)) levels, each at most 2x
    assert levels_between(FULL, (0.0, 3.0, 0.0, 3.0)) == 2
    assert levels_between(FULL, (0.0, 9.0, 0.0, 9.0)) == 1  # a pan still takes one level


def test_video_spec_round_trip_and_validation():
    g = small_grid()
    spec = VideoSpec(grid=g, full_x_range=(-3.0, 6.0), full_y_range=(-3.0, 6.0), resolution=32,
                     frames_per_level=4, fps=8)
    assert spec.resolution == (32, 32)
    back = VideoSpec.from_json(spec.to_json())
    assert back == spec and isinstance(back.grid, GridSpec)
    assert back.content_hash() == spec.content_hash()
    assert spec.keyframes()[0] == FULL and spec.keyframes()[-1] == (1.0, 1.5625, 0.5, 1.0625)
    assert len(spec.keyframes()) == 5 and spec.n_frames == 4 * 4 + 1
    assert spec.frame_size == (64, 64)
    kg = spec.keyframe_grid(spec.keyframes()[1])
    assert kg.x_range == spec.keyframes()[1][:2] and kg.steps == g.steps
    assert tuple(kg.resolution) == (32, 32)
    # a dict for the grid is accepted (what a job record holds)
    assert VideoSpec(grid=g.to_dict(), full_x_range=(-3, 6), full_y_range=(-3, 6)).grid == g
    bad = [
        (dict(resolution=33), "resolution"),
        (dict(resolution=8), "resolution"),
        (dict(frames_per_level=1), "frames_per_level"),
        (dict(fps=0), "fps"),
        (dict(formats=("avi",)), "formats"),
        (dict(formats=()), "formats"),
        (dict(upscale=17), "upscale"),
        (dict(upscale=0), "upscale"),
        (dict(resolution=1024, upscale=8), "upscale"),  # 8192-px frames
        (dict(full_x_range=None), "full_x_range"),
        (dict(full_x_range=(2.0, 1.0)), "full_x_range"),
        (dict(path=((0.0, 1.0, 1.0, 0.0), (0.0, 0.5, 0.0, 0.5))), "path"),
    ]
    for change, field in bad:
        kwargs = dict(grid=g, full_x_range=(-3.0, 6.0), full_y_range=(-3.0, 6.0))
        kwargs.update(change)
        with pytest.raises(ValueError, match=f"^{field}"):
            VideoSpec(**kwargs)
    whole = dataclasses.replace(g, x_range=(-3.0, 6.0), y_range=(-3.0, 6.0))
    with pytest.raises(ValueError, match="^path"):
        VideoSpec(grid=whole, full_x_range=(-3.0, 6.0), full_y_range=(-3.0, 6.0))


def test_first_and_last_frames_are_the_keyframes_own_pictures():
    views = keyframe_views([FULL, (0.0, 2.25, 1.0, 3.25)])
    measures = [analytic_measure(v, 24, 20) for v in views]
    frames = make_frames(measures, views, 3, (20, 24))
    assert len(frames) == (len(views) - 1) * 3 + 1
    np.testing.assert_array_equal(frames[0], render_measure(measures[0]))
    np.testing.assert_array_equal(frames[-1], render_measure(measures[-1]))
    np.testing.assert_array_equal(frames[3], render_measure(measures[1]))  # level boundary = keyframe 1


def test_in_between_frames_show_the_right_place():
    """A frame made from keyframes matches the field computed directly at that frame's view (the geometry:
    orientation, cropping, scaling), and is far from a vertically flipped or shifted picture."""
    outer, inner = (0.0, 4.0, 0.0, 4.0), (1.2, 3.2, 0.7, 2.7)
    mo, mi = analytic_measure(outer, 96, 96), analytic_measure(inner, 96, 96)
    for u in (0.3, 0.6, 0.9):
        view = interpolate_view(outer, inner, u)
        frame = compose_frame(mo, outer, mi, inner, view, u, (96, 96))
        direct = analytic_measure(view, 96, 96)
        converged = np.maximum(frame[..., 1], frame[..., 2]) > frame[..., 0]  # green or blue beats red
        agree = np.mean(converged == (direct < 0))
        assert agree > 0.98, (u, agree)
        assert np.mean(converged == (direct[::-1] < 0)) < 0.9  # upside down: clearly worse
        assert np.mean(converged == (np.roll(direct, 6, axis=1) < 0)) < 0.95  # 6 px to the side: worse


def test_frames_change_smoothly_across_level_boundaries():
    views = keyframe_views([FULL, (1.0, 1.5625, 0.5, 1.0625)])
    measures = [analytic_measure(v, 40, 40) for v in views]
    frames = make_frames(measures, views, 6, (40, 40))
    steps = np.array([np.abs(frames[i + 1].astype(float) - frames[i]).mean() for i in range(len(frames) - 1)])
    boundaries = steps[5::6]  # the step into each new level's first frame
    assert steps.max() < 4 * np.median(steps) + 1.0
    assert boundaries.max() < 4 * np.median(steps) + 1.0


def decode_mp4(path):
    reader = imageio.get_reader(str(path), format="FFMPEG")
    try:
        return [np.asarray(f) for f in reader]
    finally:
        reader.close()


def decode_gif(path, frame_ms):
    """The GIF's frames as played: a stored frame shown k times as long stands for k identical frames
    (GIF writers store repeated frames once with a longer duration)."""
    frames = []
    with Image.open(path) as im:
        loop = im.info.get("loop")
        for i in range(im.n_frames):
            im.seek(i)
            repeats = im.info["duration"] / frame_ms
            assert repeats == int(repeats) >= 1
            frames.extend([np.asarray(im.convert("RGB"))] * int(repeats))
    return frames, loop


def test_video_job_writes_playable_mp4_and_gif(tmp_path):
    g = small_grid()
    spec = VideoSpec(grid=g, full_x_range=(0.0, 2.25), full_y_range=(-0.5, 1.75), resolution=(16, 16), upscale=2,
                     frames_per_level=3, fps=10)
    levels = len(spec.keyframes()) - 1
    assert levels == 2
    events = []
    run_to_dir(spec, tmp_path, progress=lambda f, info=None: events.append((f, info)), cancel=threading.Event())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["preview.png", "spec.json", "video.gif", "video.mp4", "views.json"]
    n = levels * 3 + 1
    mp4 = decode_mp4(tmp_path / "video.mp4")
    assert len(mp4) == n and mp4[0].shape == (32, 32, 3)
    gif, loop = decode_gif(tmp_path / "video.gif", frame_ms=100)
    assert len(gif) == n and gif[0].shape == (32, 32, 3) and loop == 0
    # the last frame is the current view's grid, drawn in the paper's colours (lossy codecs: roughly)
    from engine.trainability import run_grid

    last = render_measure(run_grid(spec.keyframe_grid(spec.keyframes()[-1])).measure)
    last = np.repeat(np.repeat(last, 2, 0), 2, 1).astype(float)
    assert np.abs(gif[-1].astype(float) - last).mean() < 25
    assert VideoSpec.from_json((tmp_path / "spec.json").read_text()) == spec
    info = json.loads((tmp_path / "views.json").read_text())
    assert info["frames"] == n and len(info["keyframes"]) == levels + 1
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum(1 for _, i in events if i and i.get("stage") == "keyframe") == levels + 1
    with Image.open(tmp_path / "preview.png") as im:
        assert im.size == (32, 32)


def test_gif_only_zoom_out_and_cancel(tmp_path):
    g = small_grid()
    spec = VideoSpec(grid=g, full_x_range=(0.0, 2.25), full_y_range=(-0.5, 1.75), resolution=16, upscale=1,
                     frames_per_level=2, fps=5, formats=("gif",), zoom_out=True)
    out = tmp_path / "a"
    out.mkdir()
    run_to_dir(spec, out)
    assert not (out / "video.mp4").exists()
    gif, _ = decode_gif(out / "video.gif", frame_ms=200)
    assert len(gif) == spec.n_frames
    # zooming out starts at the deepest view: the first frame is the last keyframe's picture
    with Image.open(out / "preview.png") as im:
        preview = np.asarray(im.convert("RGB")).astype(float)
    assert np.abs(preview - gif[0]).mean() < 3 < np.abs(preview - gif[-1]).mean()

    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        run_to_dir(spec, tmp_path / "b", cancel=stop)
