"""Zoom videos reuse keyframes already in the store: a path of explorer levels computed as grid jobs at the
keyframe resolution has the same keys as the video's keyframes, so the video trains none of them again, and its
frames are bit for bit those of a video computed from scratch (fused kernel)."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np
import pytest

import runs
from engine.trainability import views
from engine.trainability.grid import run_grid
from engine.trainability.spec import GridSpec
from engine.trainability.video import VideoSpec, reused_keyframes, run_to_dir

# the explorer's root view at the keyframe resolution (what its levels are view_spec'ed from)
BASE = GridSpec(width=5, steps=20, resolution=(16, 16), x_range=(-1.0, 2.5), y_range=(-1.0, 2.5), seed=3)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fresh store and job registry for the test; no worker left running after it."""
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "store"))
    yield
    for st in runs.list_jobs():
        if st.active:
            runs.delete(st.id)


def zoom_path(levels: int = 2, x: float = 0.8, y: float = 0.6):
    """Views as the explorer's 2x clicks make them (snapped to the root's lattice)."""
    path = [views.view_of(BASE)]
    for _ in range(levels):
        path.append(views.snapped_zoom(path[0], BASE.resolution, path[-1], x, y, 2))
    return path


def video_spec(path) -> VideoSpec:
    return VideoSpec(grid=BASE, path=tuple(path), resolution=(16, 16), upscale=1, frames_per_level=2, fps=5,
                     formats=("gif",))


def gif_frames(folder) -> np.ndarray:
    return np.stack([np.asarray(f)[..., :3] for f in imageio.mimread(folder / "video.gif")])


def test_keyframes_have_the_explorer_levels_keys():
    path = zoom_path()
    spec = video_spec(path)
    assert spec.keyframes() == path
    for view in path:
        level, _ = views.view_spec(BASE, view)
        assert spec.keyframe_grid(view) == level
        assert spec.keyframe_grid(view).content_hash() == level.content_hash()
    assert all(spec.keyframe_grid(v).lattice is not None for v in path[1:])


def test_a_video_over_stored_levels_trains_none_and_matches_a_fresh_one(env, tmp_path):
    path = zoom_path()
    spec = video_spec(path)
    levels = [views.view_spec(BASE, v)[0] for v in path]
    ids = [runs.submit("grid", level) for level in levels]  # the explorer computed these views
    for job, level in zip(ids, levels):
        assert runs.wait(job, timeout=180).state == "done"
        stored = np.load(runs.result_dir(job) / "measure.npy")
        np.testing.assert_array_equal(stored, run_grid(level, kernel="fused").measure)  # what a fresh run gives

    video = runs.submit("zoom_video", spec)
    st = runs.wait(video, timeout=300)
    assert st.state == "done", st.message
    folder = runs.result_dir(video)
    info = json.loads((folder / "views.json").read_text())
    assert reused_keyframes(folder) == info["reused_keyframes"] == 3 and info["computed_keyframes"] == 0
    assert [e["reused"] for e in runs.events(video) if e and e.get("stage") == "keyframe"] == [True] * 3

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run_to_dir(spec, fresh)  # no sources: every keyframe trained here
    assert reused_keyframes(fresh) == 0
    np.testing.assert_array_equal(gif_frames(folder), gif_frames(fresh))
    assert (folder / "preview.png").read_bytes() == (fresh / "preview.png").read_bytes()


def test_a_video_trains_only_the_pixels_it_does_not_share(env, tmp_path):
    """Only the root level is stored: it is taken whole, and each deeper 2x keyframe takes the quarter of its
    pixels that coincide with the keyframe before it."""
    path = zoom_path()
    spec = video_spec(path)
    root = runs.submit("grid", views.view_spec(BASE, path[0])[0])
    assert runs.wait(root, timeout=180).state == "done"
    video = runs.submit("zoom_video", spec)
    st = runs.wait(video, timeout=300)
    assert st.state == "done", st.message
    info = json.loads((runs.result_dir(video) / "views.json").read_text())
    assert info["reused_keyframes"] == 1 and info["computed_keyframes"] == 2
    assert info["reused_pixels"] == 256 + 64 + 64 and info["pixels"] == 3 * 256

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run_to_dir(spec, fresh)
    np.testing.assert_array_equal(gif_frames(runs.result_dir(video)), gif_frames(fresh))
