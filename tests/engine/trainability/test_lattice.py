"""Exact pixel coordinates on the zoom lattice: what lets a zoom reuse stored pixels bit for bit.

``np.linspace`` rounds each view's coordinates its own way, so two views never share a pixel's bits; a view on
the root view's lattice computes them from integer indices (x_origin + ((col0 + j) * x_step) * 2**-level), and
multiplying by a power of two is exact. And the new fields must not move any key stored before them.
"""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest

from engine.specs import fields_of
from engine.trainability import views
from engine.trainability.presets import PRESETS
from engine.trainability.spec import GridSpec, lattice_values

cli = importlib.import_module("engine.trainability.__main__")

ROOT = (-3.0, 6.0, -3.0, 6.0)
#: content_hash() of these specs computed BEFORE the refine and lattice fields existed (git 343cbed).
KEYS_BEFORE = {"default": "5552a258e00b0b9841c8", "tanh": "5552a258e00b0b9841c8", "relu": "4694950189552cd0a943",
               "linear": "601198941e4b08b45bbd", "tanh_minibatch": "ae3016239cdc0ba82c9a",
               "tanh_single": "8a3ead4143ae80a5fc58", "offset": "ba95bbac1443e479e1ba"}


def base(n: int = 64, **over) -> GridSpec:
    return GridSpec(resolution=(n, n), x_range=ROOT[:2], y_range=ROOT[2:], **over)


def coinciding(child: GridSpec, parent: GridSpec) -> tuple[int, int]:
    """Columns and rows of ``child`` whose coordinate is float-equal to one of ``parent``'s."""
    return (int(np.isin(child.x_values, parent.x_values).sum()), int(np.isin(child.y_values, parent.y_values).sum()))


# -------------------------------------------------------------------------------------------- keys unchanged


def test_keys_stored_before_the_new_fields_are_unchanged():
    assert GridSpec().content_hash() == KEYS_BEFORE["default"]
    for name, p in PRESETS.items():
        assert p.spec.content_hash() == KEYS_BEFORE[name], name
    text = GridSpec().to_json()
    assert "refine" not in text and "lattice" not in text
    # an old spec.json (without them) and one naming the defaults read back to the same key
    explicit = dict(GridSpec().to_dict(), refine="exact", lattice=None)
    assert GridSpec.from_dict(explicit).content_hash() == KEYS_BEFORE["default"]
    assert GridSpec.from_json(text) == GridSpec()


def test_refine_is_a_declared_choice_in_the_key_and_on_the_cli():
    spec = GridSpec(refine="boundary")
    assert '"refine": "boundary"' in spec.to_json()
    assert spec.content_hash() != GridSpec().content_hash()
    assert GridSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="refine: must be one of exact, boundary, got 'fast'"):
        GridSpec(refine="fast")
    names = [f.name for f in fields_of(GridSpec)]
    assert "refine" in names and "lattice" not in names  # a mixed-type record: no widget, flag or link parameter
    args = cli._parse_args(["--out", "x", "--refine", "boundary", "--scheduler", "tcp://127.0.0.1:8786"])
    assert cli.spec_from_args(args).refine == "boundary" and args.scheduler == "tcp://127.0.0.1:8786"
    with pytest.raises(SystemExit):
        cli._parse_args(["--out", "x", "--lattice", "1"])


def test_a_refined_grids_key_holds_the_boundary_margin(monkeypatch):
    from engine.trainability import spec as spec_module

    refined, before = GridSpec(refine="boundary"), GridSpec(refine="boundary").content_hash()
    monkeypatch.setattr(spec_module, "BOUNDARY_MARGIN", spec_module.BOUNDARY_MARGIN + 1)
    assert refined.content_hash() != before  # a map refined with another margin is another result
    assert GridSpec().content_hash() == KEYS_BEFORE["default"]  # exact grids never hold it


# ---------------------------------------------------------------------------------------------- the lattice


def test_lattice_coordinates_follow_the_formula_exactly_and_set_the_ranges():
    step = 9.0 / 63
    lat = (-3.0, step, -2.0, step / 2, 3, 17, -5)
    xv = -3.0 + ((17 + np.arange(64)) * step) * 2.0 ** -3
    yv = -2.0 + ((-5 + np.arange(64)) * (step / 2)) * 2.0 ** -3
    spec = dataclasses.replace(base(), x_range=(xv[0], xv[-1]), y_range=(yv[0], yv[-1]), lattice=lat)
    np.testing.assert_array_equal(spec.x_values, xv)
    np.testing.assert_array_equal(spec.y_values, yv)
    assert spec.x_range == (xv[0], xv[-1]) and spec.y_range == (yv[0], yv[-1])
    assert isinstance(spec.lattice[4], int) and isinstance(spec.lattice[5], int)
    back = GridSpec.from_json(spec.to_json())
    assert back == spec and back.content_hash() == spec.content_hash()
    np.testing.assert_array_equal(back.x_values, xv)
    assert spec.tiles(16)[5].x_values.tolist() == xv[16:32].tolist()


def test_index_i_on_level_l_is_index_2i_on_level_l_plus_1_bit_for_bit():
    rng = np.random.default_rng(0)
    for origin, step in ((-3.0, 9.0 / 63), (0.1, 0.3 / 255), (-7.3, 1.7 / 99)):
        for level in (0, 1, 5, 20, 40):
            i = int(rng.integers(-1000, 1000))
            a = lattice_values(origin, step, level, i, 3)
            b = lattice_values(origin, step, level + 1, 2 * i, 5)[::2]
            c = lattice_values(origin, step, level + 3, 8 * i, 17)[::8]
            assert a.tobytes() == b.tobytes() == c.tobytes()


def test_level_zero_equals_linspace_but_perhaps_the_last_point():
    for lo, hi, n in ((-3.0, 6.0, 64), (0.1, 2.7, 37), (-1.0, 2.5, 12)):
        step = (hi - lo) / (n - 1)
        lat = lattice_values(lo, step, 0, 0, n)
        np.testing.assert_array_equal(lat[:-1], np.linspace(lo, hi, n)[:-1])


@pytest.mark.parametrize("lattice, message", [
    ((float("nan"), 0.1, 0.0, 0.1, 1, 0, 0), "lattice: x_origin must be a finite number"),
    ((0.0, 0.0, 0.0, 0.1, 1, 0, 0), "lattice: x_step must be a positive number"),
    ((0.0, 0.1, 0.0, -0.1, 1, 0, 0), "lattice: y_step must be a positive number"),
    ((0.0, 0.1, 0.0, 0.1, 61, 0, 0), r"lattice: level must be an integer in \[0, 60\]"),
    ((0.0, 0.1, 0.0, 0.1, -1, 0, 0), r"lattice: level must be an integer in \[0, 60\]"),
    ((0.0, 0.1, 0.0, 0.1, 1, 0.5, 0), "lattice: col0 must be an integer"),
    ((0.0, 0.1, 0.0, 0.1, 1, 0, True), "lattice: row0 must be an integer"),
    ((0.0, 0.1, 0.0, 0.1, 1, 2**53, 0), "lattice: col0 must be within"),
    ((0.0, 0.1, 0.0, 0.1, 1), "lattice: must be"),
    ("lattice", "lattice: must be"),
])
def test_bad_lattices_are_refused_by_name(lattice, message):
    with pytest.raises(ValueError, match=message):
        GridSpec(lattice=lattice)


def test_a_range_that_disagrees_with_the_lattice_is_refused_not_replaced():
    root = views.view_of(base())
    child, _ = views.view_spec(base(), views.snapped_zoom(root, 64, root, 1.0, 2.0, 2))
    with pytest.raises(ValueError, match="x_range: .* is not the lattice's view"):
        dataclasses.replace(child, resolution=(32, 32))  # would silently compute a different view
    with pytest.raises(ValueError, match="x_range: .* is not the lattice's view"):
        GridSpec(lattice=child.lattice)
    assert dataclasses.replace(child, dtype="float32").x_values.tolist() == child.x_values.tolist()


# -------------------------------------------------------------------------------------------------- the views


def test_a_2x_snapped_zoom_shares_half_its_columns_and_rows_with_the_root():
    spec0 = base()
    root = views.view_of(spec0)
    view = views.snapped_zoom(root, 64, root, 1.3, 0.4, 2)
    spec1, _ = views.view_spec(spec0, view)
    assert spec1.lattice is not None and spec1.lattice[4] == 1 and spec1.lattice[5] % 2 == 0
    assert coinciding(spec1, spec0) == (32, 32)  # so 25% of the pixels
    # factor 2 about the click, within half a parent pixel
    plain = views.zoom_view(root, 1.3, 0.4, 2)
    assert all(abs(a - b) <= 0.5 * 9 / 63 + 1e-12 for a, b in zip(view, plain))
    assert abs((view[1] - view[0]) * 2 - 9.0) < 1e-12


def test_deeper_levels_share_a_quarter_per_2x_and_a_sixteenth_per_4x():
    spec0 = base()
    root = views.view_of(spec0)
    v1 = views.snapped_zoom(root, 64, root, 1.3, 0.4, 2)
    spec1, _ = views.view_spec(spec0, v1)
    v2 = views.snapped_zoom(root, 64, v1, 1.5, 0.2, 2)
    spec2, _ = views.view_spec(spec0, v2)
    assert spec2.lattice[4] == 2 and coinciding(spec2, spec1) == (32, 32)
    v3 = views.snapped_zoom(root, 64, v1, 1.5, 0.2, 4)
    spec3, _ = views.view_spec(spec0, v3)
    assert spec3.lattice[4] == 3 and coinciding(spec3, spec1) == (16, 16)  # 1/16 of the pixels
    assert coinciding(spec3, spec2)[0] >= 16
    # the same views found again from a child spec (its lattice names the root)
    assert views.view_spec(spec2, v3)[0] == spec3
    # and a view zoomed 2x from deep down keeps finding its lattice
    v = v1
    for _ in range(20):
        v = views.snapped_zoom(root, 64, v, views.view_center(v)[0] + 1e-7, 0.2, 2)
    deep, _ = views.view_spec(spec0, v)
    assert deep.lattice is not None and deep.lattice[4] == 21


def test_unsnapped_views_keep_linspace_coordinates():
    spec0 = base()
    root = views.view_of(spec0)
    for view in (views.zoom_view(root, 1.3, 0.4, 2), views.zoom_view(root, 1.3, 0.4, 3), (0.0, 1.0, 0.0, 2.0),
                 views.snapped_zoom(root, 64, root, 1.3, 0.4, 3)):
        spec, _ = views.view_spec(spec0, view)
        assert spec.lattice is None
        np.testing.assert_array_equal(spec.x_values, np.linspace(view[0], view[1], 64))
        assert spec == views.with_view(spec0, view)
    assert views.snapped_zoom(root, 64, root, 1.3, 0.4, 3) == views.zoom_view(root, 1.3, 0.4, 3)
    assert views.snapped_zoom(root, 64, root, 1.3, 0.4, 0.5) == views.zoom_view(root, 1.3, 0.4, 0.5)
    assert views.view_spec(spec0)[0] == spec0 and views.view_spec(spec0, root)[0].lattice is None


def test_with_view_leaves_the_lattice_behind_but_keeps_the_view():
    spec0 = base()
    root = views.view_of(spec0)
    spec1, _ = views.view_spec(spec0, views.snapped_zoom(root, 64, root, 1.3, 0.4, 2))
    assert spec1.lattice is not None
    moved = views.with_view(spec1, (0.0, 1.0, 0.0, 1.0))
    assert moved.lattice is None and views.view_of(moved) == (0.0, 1.0, 0.0, 1.0)


def test_float32_promotion_keeps_the_lattice():
    spec0 = base(dtype="float32")
    root = views.view_of(spec0)
    v = root
    for _ in range(20):
        v = views.snapped_zoom(root, 64, v, 1.3, 0.4, 2)
    spec, raised = views.view_spec(spec0, v)
    assert raised and spec.dtype == "float64" and spec.lattice is not None and spec.lattice[4] == 20
