"""Views of the plane: click and box zoom arithmetic, the float64 promotion rule, the preview, and the result
folder's contract (written and read back by engine.trainability.results)."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

from engine.trainability import presets, results, views
from engine.trainability.cost import float32_resolves
from engine.trainability.spec import GridSpec

ROOT = (-3.0, 6.0, -3.0, 6.0)


def test_zoom_view_narrows_by_the_factor_around_the_point():
    assert views.zoom_view(ROOT, 1.5, 0.0, 2) == (-0.75, 3.75, -2.25, 2.25)
    assert views.zoom_view((0, 1, 0, 1), 0.5, 0.5, 0.5) == (-0.5, 1.5, -0.5, 1.5)  # factor < 1 zooms out
    v = views.zoom_view(ROOT, 10.0, -5.0, 4)  # the centre is the clicked point, not clamped to the old view
    assert views.view_center(v) == (10.0, -5.0) and v[1] - v[0] == pytest.approx(9.0 / 4)
    with pytest.raises(ValueError, match="^factor"):
        views.zoom_view(ROOT, 0, 0, 0)


def test_box_view_takes_corners_in_any_order_and_refuses_an_empty_box():
    assert views.box_view([2.0, 1.0], [0.5, -0.5]) == (1.0, 2.0, -0.5, 0.5)
    with pytest.raises(ValueError, match="^box"):
        views.box_view([1.0, 1.0], [0.0, 1.0])


def test_with_view_and_view_of_round_trip_and_validate():
    spec = presets.preset("tanh", resolution=16)
    v = (0.5, 0.75, 1.0, 1.25)
    moved = views.with_view(spec, v)
    assert views.view_of(moved) == v and moved.width == spec.width and moved.resolution == spec.resolution
    with pytest.raises(ValueError, match="^x_range"):
        views.with_view(spec, (1.0, 1.0 + 1e-15, 0.0, 1.0))  # narrower than float64 resolves


def test_float32_is_promoted_exactly_where_it_cannot_resolve_the_view():
    spec = presets.preset("tanh", resolution=256, dtype="float32")
    wide, raised = views.view_spec(spec)
    assert not raised and wide == spec
    narrow = (1.0, 1.0 + 1e-6, 2.0, 2.0 + 1e-6)
    promoted, raised = views.view_spec(spec, narrow)
    assert raised and promoted.dtype == "float64" and views.view_of(promoted) == narrow
    assert not float32_resolves(dataclasses.replace(promoted, dtype="float32"))
    # float64 asked for: never changed
    f64 = dataclasses.replace(spec, dtype="float64")
    assert views.view_spec(f64, narrow) == (views.with_view(f64, narrow), False)
    # the rule is per pixel: a view float32 cannot split 256 ways it can split 4 ways
    coarse = presets.preset("tanh", resolution=4, dtype="float32")
    assert views.view_spec(coarse, (1.0, 1.0 + 1e-5, 2.0, 2.0 + 1e-5)) == (
        views.with_view(coarse, (1.0, 1.0 + 1e-5, 2.0, 2.0 + 1e-5)), False)
    assert views.view_spec(dataclasses.replace(coarse, resolution=256), (1.0, 1.0 + 1e-5, 2.0, 2.0 + 1e-5))[1]


def test_the_zoom_video_keyframes_get_the_promotion_too():
    from engine.trainability.video import VideoSpec

    grid = presets.preset("tanh", dtype="float32", x_range=(1.0, 1.0 + 1e-6), y_range=(2.0, 2.0 + 1e-6))
    spec = VideoSpec(grid=grid, full_x_range=(-3.0, 6.0), full_y_range=(-3.0, 6.0), resolution=64)
    first, last = spec.keyframe_grid(spec.keyframes()[0]), spec.keyframe_grid(spec.keyframes()[-1])
    assert first.dtype == "float32" and last.dtype == "float64"


def test_check_and_same_view():
    assert views.check_view("v", [0, 1, 2, 3]) == (0.0, 1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="^v:"):
        views.check_view("v", (0.0, 1.0, 1.0, 0.0))
    assert views.same_view(ROOT, (-3.0, 6.0 + 1e-14, -3.0, 6.0))
    assert not views.same_view(ROOT, (-3.0, 6.1, -3.0, 6.0))


def test_result_folder_is_written_and_read_back_by_one_module(tmp_path):
    spec = GridSpec(width=4, steps=20, resolution=(12, 10), x_range=(-1.0, 2.5), y_range=(-1.0, 2.5))
    results.run_to_dir(spec, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(results.FILES)
    files = results.load(tmp_path)
    assert files.spec == spec and files.measure.shape == (10, 12)
    np.testing.assert_array_equal(files.converged, files.measure < 0)
    assert files.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert files.estimate().shape == (9, 11)
    assert np.load(io.BytesIO(files.measure_npy())).tolist() == files.measure.tolist()
    thumb = results.thumbnail(tmp_path)
    from PIL import Image

    assert max(Image.open(io.BytesIO(thumb)).size) <= results.THUMBNAIL_SIDE
    assert results.thumbnail(tmp_path / "missing") is None


def test_published_dimension_sits_beside_each_preset():
    for name, p in presets.PRESETS.items():
        assert presets.published_dimension(name)["value"] == p.paper_dimension
    assert presets.matching_preset(presets.preset("relu", resolution=8, x_range=(0.0, 1.0)).to_dict()) == "relu"
    assert presets.matching_preset(presets.preset("relu", width=3).to_dict()) is None
