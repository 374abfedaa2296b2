"""Zoom videos at a chosen output size: frames are the keyframes' resolution times ``upscale``, each keyframe pixel
a sharp block (nearest neighbour), and the caption states it (issue 13: a video from 32-pixel keyframes was 64 x 64
pixels, smoothly interpolated, then shown stretched and blurry)."""

from __future__ import annotations

import dataclasses
import json

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from engine.png import upscale as nearest
from engine.trainability import GridSpec
from engine.trainability.colours import render_measure
from engine.trainability.video import (MAX_FRAME_SIDE, VideoSpec, frame_positions, make_frames, run_to_dir,
                                       size_text)
from engine.trainability.views import keyframe_views

FULL = (-3.0, 6.0, -3.0, 6.0)


def field(view, n_x, n_y):
    """A signed field with plenty of boundary, sampled like a grid (endpoints included), rows = y."""
    x, y = np.meshgrid(np.linspace(view[0], view[1], n_x), np.linspace(view[2], view[3], n_y))
    f = np.sin(2.3 * x + 0.7 * np.sin(5 * y)) + np.cos(1.7 * y) * np.cos(3.1 * x) - 0.2
    return np.where(f < 0, -(1.0 + 50 * np.abs(f)), 1.0 + 20 * np.abs(f))


def test_frame_positions_split_each_cell_into_upscale_pixels():
    np.testing.assert_allclose(frame_positions(0.0, 3.0, 4), [0.0, 1.0, 2.0, 3.0])  # the cell centres
    pos = frame_positions(0.0, 3.0, 4, upscale=2)  # cells one wide, each two pixels: at +-0.25 of its centre
    np.testing.assert_allclose(pos, [-0.25, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.25])


@pytest.mark.parametrize("k", [1, 3, 8])
def test_keyframes_become_blocks_of_upscale_pixels(k):
    views = keyframe_views([FULL, (0.0, 2.25, 1.0, 3.25)])
    measures = [field(v, 12, 10) for v in views]
    frames = make_frames(measures, views, 3, (10, 12), upscale=k)
    assert all(f.shape == (10 * k, 12 * k, 3) for f in frames)
    # a frame at a keyframe's own view is that keyframe's picture, every pixel a k x k block
    np.testing.assert_array_equal(frames[0], nearest(render_measure(measures[0]), k))
    np.testing.assert_array_equal(frames[3], nearest(render_measure(measures[1]), k))
    np.testing.assert_array_equal(frames[-1], nearest(render_measure(measures[-1]), k))


def test_frames_between_keyframes_stay_sharp():
    """Enlarging a keyframe repeats its pixels' colours (nearest neighbour) rather than inventing blends: a
    frame halfway into a level is a cross-fade of two block pictures, so it has few distinct colours per row,
    where linear interpolation would make nearly every pixel a new colour."""
    views = keyframe_views([FULL, (0.0, 2.25, 1.0, 3.25)])
    measures = [field(v, 16, 16) for v in views]
    frames = make_frames(measures, views, 4, (16, 16), upscale=8)
    mid = frames[1]  # u = 1/4 into the first level
    runs = np.mean([np.count_nonzero(np.any(row[1:] != row[:-1], axis=-1)) for row in mid])
    assert runs < 0.3 * mid.shape[1], runs  # long runs of one colour: blocks, not gradients


def test_video_frames_are_keyframes_times_the_stated_upscale(tmp_path):
    g = dataclasses.replace(GridSpec(), x_range=(1.0, 1.5625), y_range=(0.5, 1.0625), resolution=(16, 16), steps=20)
    spec = VideoSpec(grid=g, full_x_range=(0.0, 2.25), full_y_range=(-0.5, 1.75), resolution=16, upscale=8,
                     frames_per_level=2, fps=8)
    assert spec.frame_size == (128, 128)
    assert size_text(spec) == "16-px keyframes upscaled ×8 (nearest neighbour) to 128 px"
    run_to_dir(spec, tmp_path)
    reader = imageio.get_reader(str(tmp_path / "video.mp4"), format="FFMPEG")
    try:
        mp4 = [np.asarray(f) for f in reader]
    finally:
        reader.close()
    assert len(mp4) == spec.n_frames and mp4[0].shape == (128, 128, 3)
    with Image.open(tmp_path / "video.gif") as im:
        assert im.size == (128, 128)
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("RGB"))
    blocks = last.reshape(16, 8, 16, 8, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # the final keyframe, each network one 8 x 8 block
    info = json.loads((tmp_path / "views.json").read_text())
    assert info["frame_size"] == [128, 128] and info["keyframe_size"] == [16, 16] and info["upscale"] == 8
    with Image.open(tmp_path / "preview.png") as im:
        assert im.size == (128, 128)


def test_size_text_and_bounds():
    g = dataclasses.replace(GridSpec(), x_range=(1.0, 1.5625), y_range=(0.5, 1.0625))
    base = dict(grid=g, full_x_range=(-3.0, 6.0), full_y_range=(-3.0, 6.0))
    assert size_text(VideoSpec(**base, resolution=32, upscale=1)) == "32-px keyframes, frames at their own size (32 px)"
    assert size_text(VideoSpec(**base, resolution=(64, 32), upscale=4)) == \
        "64 × 32-px keyframes upscaled ×4 (nearest neighbour) to 256 × 128 px"
    assert max(VideoSpec(**base, resolution=256, upscale=16).frame_size) == MAX_FRAME_SIDE
    with pytest.raises(ValueError, match="^upscale"):
        VideoSpec(**base, resolution=512, upscale=9)
    # no field was added: a stored spec of the old form (upscale 1..4) still opens, with the same store key
    assert [f.name for f in dataclasses.fields(VideoSpec)] == [
        "grid", "full_x_range", "full_y_range", "path", "resolution", "upscale", "frames_per_level", "fps",
        "formats", "zoom_out"]
    old = VideoSpec(**base, resolution=128, upscale=2)
    assert VideoSpec.from_json(old.to_json()).content_hash() == old.content_hash()
