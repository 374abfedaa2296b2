"""Box-counting dimension on shapes of known dimension, generated here; the paper's estimator against porespy."""

import json
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.trainability.dimension import (
    DimensionEstimate,
    box_counting_dimension,
    box_counts,
    combined_dimension,
    covering_counts,
    edge_mask,
    paper_sizes,
)
from engine.trainability.presets import PUBLISHED_DIMENSIONS, PUBLISHED_NOTE, published_dimension

KOCH = math.log(4) / math.log(3)


def koch_measure(size: int, depth: int, angle_deg: float = 0.0, radius: float = 0.42) -> np.ndarray:
    """A filled Koch snowflake as a measure: negative inside (converged), positive outside."""
    c = size / 2
    ang = np.deg2rad(np.array([90.0, 210.0, 330.0]) + angle_deg)
    pts = np.stack([c + radius * size * np.cos(ang), c + radius * size * np.sin(ang)], 1)
    pts = np.vstack([pts, pts[:1]])
    rot = np.array([[0.5, -math.sqrt(3) / 2], [math.sqrt(3) / 2, 0.5]])
    for _ in range(depth):
        a, b = pts[:-1], pts[1:]
        d = (b - a) / 3
        p1, p3 = a + d, a + 2 * d
        p2 = p1 + d @ rot.T  # the outward bump
        pts = np.vstack([np.stack([a, p1, p2, p3], 1).reshape(-1, 2), pts[-1:]])
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).polygon([tuple(p) for p in pts], fill=1)
    return np.where(np.array(img, dtype=bool), -3.0, 2.0)


def disk_measure(size: int, radius: float) -> np.ndarray:
    y, x = np.mgrid[:size, :size] + 0.5
    return np.where((x - size / 2 - 0.3) ** 2 + (y - size / 2 + 0.2) ** 2 < radius**2, -1.0, 1.0)


def half_plane_measure(size: int, angle_deg: float) -> np.ndarray:
    y, x = np.mgrid[:size, :size] + 0.5
    t = np.deg2rad(angle_deg)
    return np.where((x - size / 2) * np.sin(t) - (y - size / 2) * np.cos(t) < 0, -1.0, 1.0)


def noise_measure(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], (size, size)) * rng.uniform(1, 100, (size, size))


@pytest.fixture(scope="module")
def koch_estimate():
    return box_counting_dimension(koch_measure(1024, 6))


def test_koch_snowflake_within_a_few_hundredths(koch_estimate):
    e = koch_estimate
    assert abs(e.dimension - KOCH) < 0.03, e.to_dict()
    lo, hi = e.interval
    assert lo < e.dimension < hi and hi - lo < 0.1
    assert e.reason == ""
    # the fit avoids 1-px boxes (pixel staircase) and stops well below the snowflake's size
    assert e.fit_range[0] >= 2 and e.fit_range[1] <= 128


def test_rotated_smaller_koch_snowflake():
    e = box_counting_dimension(koch_measure(768, 6, angle_deg=40.0))
    assert abs(e.dimension - KOCH) < 0.03, e.to_dict()


@pytest.mark.parametrize("angle", [0.0, 30.0, 77.0])
def test_straight_edge_is_one(angle):
    e = box_counting_dimension(half_plane_measure(256, angle))
    assert abs(e.dimension - 1.0) < 0.02, (angle, e.to_dict())


def test_disk_boundary_is_one():
    e = box_counting_dimension(disk_measure(384, 130.0))
    assert abs(e.dimension - 1.0) < 0.02, e.to_dict()


def test_noisy_region_is_two():
    e = box_counting_dimension(noise_measure(256))
    assert abs(e.dimension - 2.0) < 0.02, e.to_dict()


def test_edge_mask_is_the_authors_two_by_two_sign_change():
    m = np.array([[-1.0, -2.0, 3.0],
                  [-1.0, -1.0, -1.0],
                  [-4.0, -1.0, -1.0]])
    expected = np.array([[False, True],
                         [False, False]])
    np.testing.assert_array_equal(edge_mask(m), expected)
    # the same rule written out: max * min over the 2x2 corners < 0
    rng = np.random.default_rng(3)
    r = rng.normal(size=(9, 7))
    corners = np.stack((r[1:, 1:], r[:-1, 1:], r[1:, :-1], r[:-1, :-1]), -1)
    np.testing.assert_array_equal(edge_mask(r), corners.max(-1) * corners.min(-1) < 0)
    assert edge_mask(r).shape == (8, 6)


def test_covering_count_of_a_full_image_is_exact_at_every_size():
    full = np.ones((100, 60), dtype=bool)
    sizes = [1, 3, 7, 16, 25]
    np.testing.assert_allclose(covering_counts(full, sizes), [100 * 60 / s**2 for s in sizes])
    # a single pixel is always in exactly one box, wherever the grid lies
    one = np.zeros((50, 50), dtype=bool)
    one[17, 31] = True
    np.testing.assert_allclose(covering_counts(one, [1, 4, 9]), [1, 1, 1])


def porespy_boxcount(im, bins=10):
    """porespy.metrics.boxcount written out (the authors' estimator) as an independent reference."""
    im = np.array(im, dtype=bool)
    ds = np.unique(np.logspace(1, np.log10(min(im.shape)), bins).astype(int))
    counts = []
    for d in ds:
        result = 0
        for i in range(0, im.shape[0], d):
            for j in range(0, im.shape[1], d):
                temp = im[i:i + d, j:j + d]
                result += np.any(temp)
                result -= np.all(temp)
        counts.append(result)
    slope = -1 * np.gradient(np.log(np.array(counts)), np.log(ds))
    return ds, np.array(counts), slope


def test_paper_estimator_matches_porespy_on_a_measure():
    m = koch_measure(200, 4, angle_deg=13.0)
    mask = edge_mask(m)
    ds, counts, slope = porespy_boxcount(mask)
    e = box_counting_dimension(m)
    np.testing.assert_array_equal(e.paper_sizes, ds)
    np.testing.assert_array_equal(e.paper_counts, counts)
    np.testing.assert_allclose(e.paper_slopes, slope)
    assert e.paper_dimension == pytest.approx(float(np.median(slope)))
    # porespy's partial rule: a fully-covered box does not count
    block = np.zeros((40, 40), dtype=bool)
    block[:20, :20] = True
    assert box_counts(block, [20], rule="partial")[0] == 0
    assert box_counts(block, [20], rule="any")[0] == 1
    # at the paper's 4096^2 the sizes run from 10 px to the whole image
    sizes = paper_sizes((4095, 4095))
    assert sizes[0] == 10 and sizes[-1] == 4095 and len(sizes) == 10


def test_combined_estimate_pools_zoom_levels_with_one_slope():
    a = koch_measure(640, 6, angle_deg=10.0)
    b = koch_measure(512, 5, angle_deg=-20.0)
    single = [box_counting_dimension(a), box_counting_dimension(b)]
    comb = combined_dimension([single[0], b])  # estimates and raw measures mix
    assert comb.n_images == 2
    assert abs(comb.dimension - KOCH) < 0.03
    assert min(e.dimension for e in single) - 1e-9 <= comb.dimension <= max(e.dimension for e in single) + 1e-9
    lo, hi = comb.interval
    assert lo < comb.dimension < hi
    pooled = np.concatenate([e.paper_slopes for e in single])
    assert comb.paper_dimension == pytest.approx(float(np.median(pooled)))
    # round trip through JSON (a cached grid's dimension.json) gives the same pooled answer
    again = combined_dimension([json.loads(json.dumps(e.to_dict())) for e in single])
    assert again.dimension == pytest.approx(comb.dimension)


def test_degenerate_inputs_give_nan_and_a_reason_never_a_crash():
    conv = box_counting_dimension(-np.ones((64, 64)))
    assert math.isnan(conv.dimension) and "converged" in conv.reason
    div = box_counting_dimension(np.full((64, 64), 5.0))
    assert math.isnan(div.dimension) and "diverged" in div.reason
    empty = box_counting_dimension(np.zeros((32, 32), dtype=bool))
    assert math.isnan(empty.dimension) and "empty" in empty.reason
    tiny = box_counting_dimension(np.array([[-1.0, 1.0]]))
    assert math.isnan(tiny.dimension) and "too small" in tiny.reason
    speck = np.ones((40, 40))
    speck[20, 20] = -1.0  # a boundary of a few pixels: no scaling range at all
    s = box_counting_dimension(speck)
    assert s.reason
    for e in (conv, div, empty, tiny, s):
        json.dumps(e.to_dict(), allow_nan=False)  # NaN becomes null
    comb = combined_dimension([conv, div])
    assert math.isnan(comb.dimension) and comb.n_images == 0 and "converged" in comb.reason


def test_to_dict_round_trip_and_table(koch_estimate):
    d = koch_estimate.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = DimensionEstimate.from_dict(json.loads(text))
    assert back.dimension == pytest.approx(koch_estimate.dimension)
    np.testing.assert_allclose(back.counts, koch_estimate.counts)
    rows = koch_estimate.table()
    fit_rows = [r for r in rows if r["estimator"] == "least_squares" and r["in_fit"]]
    assert len(fit_rows) >= 4
    for r in fit_rows:  # the fitted line passes close to the counts it was fitted to
        assert abs(math.log(r["fitted_count"]) - math.log(r["count"])) < 0.15
    assert sum(r["estimator"] == "paper" for r in rows) == len(koch_estimate.paper_sizes)


def test_published_values():
    assert PUBLISHED_DIMENSIONS == {"linear": 1.17, "relu": 1.20, "tanh_single": 1.41, "tanh_minibatch": 1.55,
                                    "tanh": 1.66, "offset": 1.98}
    assert "4096" in PUBLISHED_NOTE
    info = published_dimension("tanh")
    assert info["value"] == 1.66 and "tanh" in info["experiment"]
    assert published_dimension("no-such-preset") is None
