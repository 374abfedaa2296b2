"""The paper's colouring: orientation, colours, agreement with plotly and the authors' recipe, PNG output."""

import io

import numpy as np
import plotly.colors as pc
import pytest
from PIL import Image

from engine.png import png_bytes
from engine.trainability.colours import (
    PLOTLY_SPECTRAL,
    SPECTRAL_COLORSCALE,
    colorize,
    equalized_values,
    heatmap_style,
    measure_png,
    render_measure,
)


def synthetic_measure(n_x: int = 40, n_y: int = 30) -> np.ndarray:
    """Converged (negative) below a diagonal boundary, diverged above; |measure| largest next to the boundary,
    as the convergence measure is (slow convergence / divergence near the edge of trainability)."""
    y, x = np.mgrid[:n_y, :n_x].astype(float)
    dist = (y - 0.5 * x - 5.3) / 3.0 + 1e-6 * (x + n_x * y)  # > 0 above the line; no two pixels tie
    return np.where(dist < 0, -500.0, 50.0) / (1.0 + np.abs(dist))


def luminance(rgb):
    rgb = np.asarray(rgb, dtype=float)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def test_spectral_matches_plotly_and_is_reversed_for_equalized_values():
    assert list(PLOTLY_SPECTRAL) == list(pc.diverging.Spectral)
    assert [c for _, c in SPECTRAL_COLORSCALE] == list(reversed(pc.diverging.Spectral))
    assert SPECTRAL_COLORSCALE[0][0] == 0.0 and SPECTRAL_COLORSCALE[-1][0] == 1.0


def test_equalized_values_spread_each_sign_over_its_band():
    m = synthetic_measure()
    v = equalized_values(m)
    conv, div = m < 0, m > 0
    assert v[conv].min() == pytest.approx(-1.0) and v[conv].max() == pytest.approx(-0.25)
    assert v[div].min() == pytest.approx(0.25) and v[div].max() == pytest.approx(1.0)
    # order is kept within each sign: most negative measure -> -1, largest positive -> +1
    assert v.flat[np.argmin(m)] == pytest.approx(-1.0)
    assert v.flat[np.argmax(m)] == pytest.approx(1.0)
    # histogram-equalised: distinct values are evenly spread (a uniform distribution over the band)
    distinct = np.random.default_rng(0).normal(size=1000) * 10.0 ** np.random.default_rng(1).uniform(-3, 3, 1000)
    e = equalized_values(distinct)
    neg = np.sort(e[distinct < 0])
    np.testing.assert_allclose(neg, np.linspace(-1, -0.25, len(neg)))


def test_matches_the_authors_cdf_img_drawn_with_plotly_spectral():
    """Independent reference: the authors' cdf_img (sort + interp, negate), coloured by plotly's own sampler."""
    rng = np.random.default_rng(5)
    m = rng.normal(size=(12, 17)) * 10.0 ** rng.uniform(-2, 3, (12, 17))  # distinct values, both signs
    u = np.sort(m.ravel())
    n_neg = int((u < 0).sum())
    v = np.concatenate((np.linspace(-1, -0.25, n_neg), np.linspace(0.25, 1, u.size - n_neg)))
    drawn = -np.interp(m, u, v)  # the negated value ...
    ref = pc.sample_colorscale("Spectral", list(((drawn + 1) / 2).ravel()), colortype="tuple")  # ... on Spectral
    ref = np.array(ref).reshape(12, 17, 3) * 255.0 if np.max(ref) <= 1.0 else np.array(ref).reshape(12, 17, 3)
    got = render_measure(m)[::-1].astype(float)  # undo the flip: row i = i-th y again
    assert np.abs(got - ref).max() <= 1.0


def test_heatmap_style_gives_the_png_colours():
    m = synthetic_measure()
    style = heatmap_style(m)
    assert style["zmin"] == -1.0 and style["zmax"] == 1.0 and style["colorscale"] == SPECTRAL_COLORSCALE
    z = np.asarray(style["z"])
    assert z.shape == m.shape
    ref = pc.sample_colorscale(style["colorscale"], list(((z + 1) / 2).ravel()), colortype="tuple")
    ref = np.array(ref).reshape(*m.shape, 3)
    ref = ref * 255.0 if ref.max() <= 1.0 else ref
    assert np.abs(render_measure(m)[::-1].astype(float) - ref).max() <= 1.0


def test_orientation_top_row_is_largest_y():
    m = synthetic_measure()
    img = render_measure(m)
    assert img.shape == (m.shape[0], m.shape[1], 3) and img.dtype == np.uint8
    unflipped = colorize(equalized_values(m))
    np.testing.assert_array_equal(img[0], unflipped[-1])  # top row = last input row = largest y
    np.testing.assert_array_equal(img[-1], unflipped[0])  # input row 0 (smallest y) at the bottom
    tiny = np.array([[-1.0, -1.0], [1.0, 1.0]])  # row 0 (small y) converged, row 1 diverged
    t = render_measure(tiny).astype(int)
    assert t[0, 0, 0] > t[0, 0, 2]  # top row: diverged, red
    assert t[1, 0, 2] > t[1, 0, 0]  # bottom row: converged, blue


def test_converged_is_blue_green_diverged_red_orange_darkest_at_the_boundary():
    m = synthetic_measure()
    img = render_measure(m)[::-1].astype(int)  # back to measure orientation
    conv, div = m < 0, m > 0
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    assert np.all(np.maximum(g, b)[conv] > r[conv])  # green or blue beats red
    assert np.all(r[div] > b[div])  # red/orange
    lum = luminance(img)
    # next to the boundary |measure| is largest: those pixels are the darkest of their side
    near_c, far_c = np.argmin(m), np.argmax(np.where(conv, m, -np.inf))
    near_d, far_d = np.argmax(m), np.argmin(np.where(div, m, np.inf))
    assert lum.flat[near_c] < lum.flat[far_c] - 60
    assert lum.flat[near_d] < lum.flat[far_d] - 60
    # luminance falls monotonically towards the boundary along a column
    col = 10
    rows_c = np.where(conv[:, col])[0]
    assert np.all(np.diff(lum[rows_c, col]) <= 1)  # darker as y approaches the boundary from below


def test_png_header_size_and_pixels():
    m = synthetic_measure(13, 7)
    rgb = render_measure(m)
    data = png_bytes(rgb, scale=3)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    im = Image.open(io.BytesIO(data))
    assert im.size == (13 * 3, 7 * 3) and im.mode == "RGB"
    arr = np.asarray(im)
    np.testing.assert_array_equal(arr[::3, ::3], rgb)
    np.testing.assert_array_equal(arr[2::3, 2::3], rgb)
    assert measure_png(m) == png_bytes(rgb)
    with pytest.raises(ValueError, match="scale"):
        png_bytes(rgb, scale=0)
    with pytest.raises(ValueError, match="rgb"):
        png_bytes(rgb.astype(float))


def test_ties_nan_and_one_sided_maps():
    all_conv = -np.arange(1.0, 10.0).reshape(3, 3)
    v = equalized_values(all_conv)
    assert v.min() == pytest.approx(-1.0) and v.max() == pytest.approx(-0.25)
    ties = np.array([[-2.0, -2.0, -1.0, 3.0]])
    vt = equalized_values(ties)
    assert vt[0, 0] == vt[0, 1]
    nan = np.array([[np.nan, -1.0], [1.0, 2.0]])
    img = render_measure(nan)
    assert tuple(img[1, 0]) == (128, 128, 128)  # NaN is grey (flipped: input row 0 is the bottom row)


def test_weighted_reference_blends_two_equalisations():
    """What a zoom video's in-between frames use: one map from two keyframes' pixels, weighted."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(20, 20)) * 10.0 ** rng.uniform(-2, 2, (20, 20))
    b = 3.0 * rng.normal(size=(10, 10))
    ref = np.concatenate([a.ravel(), b.ravel()])
    only_a = np.concatenate([np.ones(a.size), np.zeros(b.size)])
    # weight 0 on b: exactly a's own equalisation; equal weights: the pooled, unweighted equalisation
    np.testing.assert_allclose(equalized_values(a, ref, reference_weights=only_a), equalized_values(a))
    np.testing.assert_allclose(equalized_values(b, ref, reference_weights=np.ones(ref.size)),
                               equalized_values(b, ref))
    # half and half: each value lands between its place in the two maps
    lo = equalized_values(b, a)
    hi = equalized_values(b)
    mid = equalized_values(b, ref, reference_weights=np.concatenate([np.full(a.size, 0.5 / a.size),
                                                                      np.full(b.size, 0.5 / b.size)]))
    # (up to the mid-rank end-point scaling, a few 1e-4)
    assert np.all(mid >= np.minimum(lo, hi) - 0.01) and np.all(mid <= np.maximum(lo, hi) + 0.01)
    assert np.abs(mid - lo).mean() > 0.02 and np.abs(mid - hi).mean() > 0.02
    assert np.all(np.sign(mid) == np.sign(b))
    with pytest.raises(ValueError, match="reference_weights"):
        equalized_values(a, ref, reference_weights=np.ones(3))
