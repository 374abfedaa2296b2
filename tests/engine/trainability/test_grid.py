"""The trainability engine: the measure, the spec, the fast kernel against plain autograd, tiling, the task.

Grids here are tiny (a few pixels, narrow networks, few steps): the tests check that numbers are *right* and
*identical* where they must be, never how fast they come.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import trainability as tr
from engine.errors import Cancelled
from engine.trainability import GridSpec, executor, run_grid

ROOT = Path(__file__).resolve().parents[3]
cli = importlib.import_module("engine.trainability.__main__")  # the CLI's parser, as `python -m` runs it


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_torch():
    """The autograd reference runs tiny ops; on a busy 2-core machine intra-op threads make them 40x slower."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def small(**over) -> GridSpec:
    """A cheap grid that still shows both regions: width 5 (N = 30), 40 steps, 4 x 3 pixels."""
    kw = dict(width=5, steps=40, resolution=(4, 3), x_range=(-1.0, 2.5), y_range=(-1.0, 2.5), seed=3)
    kw.update(over)
    return GridSpec(**kw)


def assert_same_map(measure: np.ndarray, reference: np.ndarray, rtol: float = 1e-4) -> None:
    """What holds on every CPU when the same pixels are computed in differently shaped tensor ops (tiles, single
    pixels, slot counts): BLAS picks a kernel per shape, and chaotic training amplifies the last bit to ~1e-6,
    so results agree to a relative bound and in every verdict, not bit for bit. A verdict flips only when a
    pixel's last-20-steps loss ratio sits within ~1e-6 of 1, which these small grids never do."""
    measure, reference = np.asarray(measure), np.asarray(reference)
    np.testing.assert_array_equal(measure < 0, reference < 0)
    np.testing.assert_allclose(measure, reference, rtol=rtol, atol=0)


# --------------------------------------------------------------------------------------- the reference network


def reference_losses(spec: GridSpec, x: float, y: float, init=None) -> np.ndarray:
    """One pixel, written literally from the paper's code: unscaled weights, torch.autograd, a Python loop.

    ``Z = X W0 / sqrt(n)``, ``H = act(Z)``, ``out = (H W1 / sqrt(n)) / sqrt(n)``, MSE; the offset is added to
    W0 at init (and before every later step with ``offset_every_step``); minibatch gradients use the engine's
    row draws while the recorded loss is the full-batch one. Stops at the first non-finite loss (+inf after).
    """
    dt = tr.DTYPES[spec.dtype]
    data = tr.draw_init(spec) if init is None else init
    X, Y, W0, W1 = (torch.tensor(np.asarray(data[k], dtype=np.float64), dtype=dt) for k in ("X", "Y", "W0", "W1"))
    Y, W1 = Y.reshape(-1, 1), W1.reshape(-1, 1)
    n = W0.shape[0]
    batches = tr.draw_batches(spec)
    if spec.phase_space == "lr_vs_lr":
        lr0, lr1, off = 10.0**x, 10.0**y, 0.0
    else:
        lr0 = lr1 = 10.0**y
        off = 10.0**x

    def net(W0, W1, X):
        Z = X @ W0 / math.sqrt(n)
        if spec.activation == "tanh":
            H = torch.tanh(Z * math.sqrt(2))
        elif spec.activation == "relu":
            H = torch.relu(Z) * math.sqrt(2)
        else:
            H = Z
        return (H @ W1 / math.sqrt(n)) / math.sqrt(n)

    W0 = W0 + off
    out = np.full(spec.steps, np.inf)
    for t in range(spec.steps):
        if spec.offset_every_step and t > 0:
            W0 = W0 + off
        W0 = W0.detach().requires_grad_(True)
        W1 = W1.detach().requires_grad_(True)
        loss = torch.mean((net(W0, W1, X) - Y) ** 2)
        out[t] = loss.item()
        if not math.isfinite(out[t]):
            break
        if batches is None:
            loss_b = loss
        else:
            idx = torch.as_tensor(batches[t])
            loss_b = torch.mean((net(W0, W1, X[idx]) - Y[idx]) ** 2)
        g0, g1 = torch.autograd.grad(loss_b, (W0, W1))
        W0, W1 = (W0 - lr0 * g0).detach(), (W1 - lr1 * g1).detach()
    return out


CASES = {
    "tanh": dict(activation="tanh"),
    "relu": dict(activation="relu"),
    "identity": dict(activation="identity"),
    "tanh_minibatch": dict(activation="tanh", batch_size=5),
    "relu_minibatch": dict(activation="relu", batch_size=3),
    "identity_minibatch": dict(activation="identity", batch_size=2),
    "tanh_single_datapoint": dict(activation="tanh", dataset_size=1),
    "offset_once": dict(phase_space="offset_vs_lr", x_range=(-2.0, 0.5), y_range=(-1.5, 1.5)),
    "offset_every_step": dict(
        phase_space="offset_vs_lr", x_range=(-2.0, 0.5), y_range=(-1.5, 1.5), offset_every_step=True
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fast_kernel_equals_autograd_reference_pixel_by_pixel(case):
    spec = small(**CASES[case])
    res = run_grid(spec, device="cpu")
    assert res.measure.shape == (3, 4) and res.measure.dtype == np.float64
    for i, y in enumerate(spec.y_values):
        for j, x in enumerate(spec.x_values):
            ref = reference_losses(spec, x, y)
            fast = tr.pixel_loss_curve(spec, x, y, device="cpu")
            # Early losses agree to rounding (later ones near the boundary are chaotic: tiny differences grow,
            # and past the 1e6 clip the values no longer matter)...
            early = (np.arange(spec.steps) < 12) & (ref <= 1e6 * ref[0])
            np.testing.assert_allclose(fast[early], ref[early], rtol=1e-7, atol=1e-12 * ref[0])
            # ...and so does each pixel's measure and verdict.
            m_ref = tr.convergence_measure(ref)
            assert (m_ref < 0) == res.converged[i, j], (case, i, j)
            assert res.measure[i, j] == pytest.approx(m_ref, rel=1e-2)


def test_every_case_has_both_regions_so_the_reference_test_means_something():
    both = [c for c in CASES if 0 < run_grid(small(**CASES[c]), device="cpu").converged.mean() < 1]
    assert len(both) >= len(CASES) - 2, both


# ----------------------------------------------------------------------------------------------- the measure


def test_measure_formula_on_hand_made_curves():
    T = 30
    down = np.linspace(4.0, 1.0, T)  # converging: last 20 below the first
    v = down / down[0]
    assert tr.convergence_measure(down) == pytest.approx(-v.sum())
    up = np.linspace(1.0, 3.0, T)  # diverging slowly: finite, mean of the end above 1
    assert tr.convergence_measure(up) == pytest.approx((1 / up).sum())
    # non-finite losses count as 1e6 before normalising; then the ratio is clipped at 1e6
    blow = np.array([0.5, 2.0, np.inf] + [np.nan] * (T - 3))
    vv = np.minimum(np.array([0.5, 2.0] + [1e6] * (T - 2)) / 0.5, 1e6)
    assert tr.convergence_measure(blow) == pytest.approx((1 / vv).sum())
    # a curve that ends exactly at its start is not converged (strict < 1)
    flat = np.ones(T)
    assert tr.convergence_measure(flat) == pytest.approx(float(T))
    # batches of curves: (..., T) -> (...)
    stack = np.stack([down, up, blow])
    np.testing.assert_allclose(tr.convergence_measure(stack), [tr.convergence_measure(c) for c in stack])
    m = tr.convergence_measure(np.stack([stack, stack]))
    assert m.shape == (2, 3)


def test_measure_uses_the_mean_of_the_last_20_and_clips_huge_ratios():
    T = 40
    osc = np.ones(T)
    osc[-20:] = [0.5, 1.4] * 10  # mean 0.95 < 1: converged despite oscillating
    assert tr.convergence_measure(osc) < 0
    osc[-20:] = [0.6, 1.5] * 10  # mean 1.05
    assert tr.convergence_measure(osc) > 0
    tiny0 = np.array([1e-9] + [1.0] * (T - 1))  # ratio 1e9 -> clipped to 1e6
    assert tr.convergence_measure(tiny0) == pytest.approx(1.0 + (T - 1) * 1e-6)


def test_measure_is_never_nan():
    curves = np.array([[0.0] * 25, [np.nan] * 25, [np.inf] * 25, [0.0] + [1.0] * 24, [1.0] + [0.0] * 24])
    m = tr.convergence_measure(curves)
    assert not np.isnan(m).any()
    with pytest.raises(ValueError, match="losses"):
        tr.convergence_measure(np.float64(1.0))


# -------------------------------------------------------------------------------------------------- the spec


def test_defaults_match_the_issue_and_resolution_is_normalised():
    s = GridSpec()
    assert (s.activation, s.width, s.dataset_size, s.batch_size, s.steps) == ("tanh", 16, None, None, 500)
    assert (s.phase_space, s.x_range, s.y_range, s.resolution, s.seed, s.dtype) == (
        "lr_vs_lr", (-3.0, 6.0), (-3.0, 6.0), (64, 64), 0, "float64")
    assert s.n_samples == 272 and GridSpec(activation="identity").n_samples == 16
    assert GridSpec(dataset_size=1).n_samples == 1
    a, b = GridSpec(resolution=48), GridSpec(resolution=(48, 48))
    assert a == b and a.content_hash() == b.content_hash() and a.resolution == (48, 48)
    c = GridSpec(resolution=(40, 30), x_range=(-3, 6))  # ints become floats: same hash as (-3.0, 6.0)
    assert c.shape == (30, 40) and c.x_range == (-3.0, 6.0)
    assert c.content_hash() == GridSpec(resolution=(40, 30)).content_hash()
    np.testing.assert_array_equal(c.x_values, np.linspace(-3.0, 6.0, 40))
    np.testing.assert_array_equal(c.y_values, np.linspace(-3.0, 6.0, 30))


@pytest.mark.parametrize(
    "over, field",
    [
        (dict(width=-4), "width"),
        (dict(width=0), "width"),
        (dict(width=2.5), "width"),
        (dict(steps=19), "steps"),
        (dict(steps=True), "steps"),
        (dict(x_range=(2.0, 2.0)), "x_range"),
        (dict(y_range=(3.0, -1.0)), "y_range"),
        (dict(x_range=(0.0, math.inf)), "x_range"),
        (dict(x_range=(-40.0, 1.0)), "x_range"),
        (dict(x_range=(1.0, 1.0 + 1e-15)), "x_range"),  # narrower than float64 resolves at 64 px
        (dict(x_range="wide"), "x_range"),
        (dict(activation="swish"), "activation"),
        (dict(phase_space="lr_vs_momentum"), "phase_space"),
        (dict(dtype="float16"), "dtype"),
        (dict(resolution=1), "resolution"),
        (dict(resolution=(64, 0)), "resolution"),
        (dict(resolution=(100_000, 64)), "resolution"),
        (dict(resolution=(64, 64, 64)), "resolution"),
        (dict(dataset_size=0), "dataset_size"),
        (dict(batch_size=-16), "batch_size"),
        (dict(seed=-1), "seed"),
        (dict(offset_every_step=True), "offset_every_step"),  # only for offset_vs_lr
        (dict(offset_every_step="yes", phase_space="offset_vs_lr"), "offset_every_step"),
    ],
)
def test_bad_specs_raise_value_errors_naming_the_field(over, field):
    with pytest.raises(ValueError) as e:
        GridSpec(**over)
    assert str(e.value).startswith(field + ":"), str(e.value)


def test_json_round_trip_and_content_hash():
    spec = GridSpec(activation="relu", batch_size=16, resolution=(40, 30), x_range=(-1.5, 2.25), seed=7,
                    dtype="float32")
    back = GridSpec.from_json(spec.to_json())
    assert back == spec and back.content_hash() == spec.content_hash()
    assert isinstance(back.x_range, tuple) and isinstance(back.resolution, tuple)
    assert GridSpec.from_dict(json.loads(spec.to_json(indent=2))) == spec
    # sensitive to every field
    changes = dict(activation="tanh", width=8, dataset_size=100, batch_size=8, steps=100, phase_space="offset_vs_lr",
                   x_range=(-1.5, 2.5), y_range=(-3.0, 5.0), resolution=(40, 31), seed=8, dtype="float64")
    hashes = {spec.content_hash()}
    for name, value in changes.items():
        hashes.add(dataclasses.replace(spec, **{name: value}).content_hash())
    hashes.add(dataclasses.replace(spec, phase_space="offset_vs_lr", offset_every_step=True).content_hash())
    assert len(hashes) == len(changes) + 2
    assert spec.content_hash("abc") != spec.content_hash()


def test_content_hash_is_stable_across_processes():
    spec = tr.preset("tanh_minibatch", resolution=(33, 17))
    code = (
        "from engine.trainability import preset; "
        "print(preset('tanh_minibatch', resolution=(33, 17)).content_hash())"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == spec.content_hash()


def test_tiles_round_trip_and_cover_the_grid():
    spec = GridSpec(resolution=(7, 5))
    tiles = spec.tiles(3)
    assert len(tiles) == 3 * 2
    cover = np.zeros(spec.shape, int)
    for t in tiles:
        assert tr.GridTile.from_json(t.to_json()) == t
        cover[t.rows[0] : t.rows[1], t.cols[0] : t.cols[1]] += 1
        np.testing.assert_array_equal(t.x_values, spec.x_values[t.cols[0] : t.cols[1]])
    assert (cover == 1).all()
    with pytest.raises(ValueError, match="^rows:"):
        tr.GridTile(spec, (3, 9), (0, 2))


# ----------------------------------------------------------------------------------- tiling, threads, pixels


def test_tiling_and_worker_threads_never_change_a_verdict(monkeypatch):
    spec = small(resolution=(7, 6), steps=30, x_range=(-0.5, 2.5), y_range=(-0.5, 2.5))
    monkeypatch.setenv("FRACTAL_LAB_THREADS", "1")
    whole = run_grid(spec, device="cpu")
    monkeypatch.setenv("FRACTAL_LAB_THREADS", "2")
    threaded = run_grid(spec, device="cpu")
    assert_same_map(threaded.measure, whole.measure)
    for size in (1, 4, (5, 2)):
        tiled = np.full(spec.shape, np.nan)
        for tile in spec.tiles(size):
            r = tr.run_tile(tile, device="cpu")
            tiled[tile.rows[0] : tile.rows[1], tile.cols[0] : tile.cols[1]] = r.measure
        assert not np.isnan(tiled).any()
        assert_same_map(tiled, whole.measure)
    assert 0 < whole.converged.mean() < 1


@pytest.mark.parametrize("preset_name", ["tanh", "tanh_minibatch", "offset"])
def test_pixel_loss_curve_reproduces_the_grid_verdict_and_measure(preset_name):
    spec = tr.preset(preset_name, width=6, steps=60, resolution=(6, 5))
    res = run_grid(spec, device="cpu")
    assert 0 < res.converged.mean() < 1
    for i in range(spec.n_y):
        for j in range(spec.n_x):
            curve = tr.pixel_loss_curve(spec, res.x_values[j], res.y_values[i])
            assert curve.shape == (spec.steps,) and curve.dtype == np.float64
            measure = float(tr.convergence_measure(curve))
            assert bool(measure < 0) == res.converged[i, j]  # the curve shown gives the map's verdict
            assert measure == pytest.approx(res.measure[i, j], rel=1e-4)


def test_diverged_pixels_stop_early_and_stay_non_finite():
    spec = small(resolution=(5, 5), steps=60, x_range=(0.0, 6.0), y_range=(0.0, 6.0))
    res = run_grid(spec, device="cpu")
    assert res.steps_run < tr.network_steps(spec)
    curve = tr.pixel_loss_curve(spec, 6.0, 6.0)
    first = int(np.argmax(~np.isfinite(curve)))
    assert 0 < first < spec.steps and np.isinf(curve[first + 1 :]).all()
    assert res.measure[-1, -1] > 0 and not res.converged[-1, -1]


# ------------------------------------------------------------------------------------------- init, minibatch


def test_init_is_used_exactly_as_given():
    spec = small()
    base = run_grid(spec, device="cpu")
    given = run_grid(spec, init=tr.draw_init(spec), device="cpu")
    np.testing.assert_array_equal(given.measure, base.measure)
    assert base.init_hash is None and given.init_hash == tr.init_hash(tr.draw_init(spec))
    other = tr.draw_init(dataclasses.replace(spec, seed=99))
    changed = run_grid(spec, init=other, device="cpu")
    assert not np.array_equal(changed.measure, base.measure)
    np.testing.assert_array_equal(changed.measure, run_grid(dataclasses.replace(spec, seed=99), device="cpu").measure)
    # 1-D Y and W1 are accepted as columns; the curve at a pixel uses the given arrays too
    flat = {k: (v.ravel() if k in ("Y", "W1") else v) for k, v in other.items()}
    x, y = spec.x_values[1], spec.y_values[2]
    assert tr.init_hash(flat) == tr.init_hash(other)
    curve = tr.pixel_loss_curve(spec, x, y, init=flat)
    np.testing.assert_array_equal(curve, tr.pixel_loss_curve(spec, x, y, init=other))
    ref = reference_losses(spec, x, y, init=other)
    np.testing.assert_allclose(curve[:12], ref[:12], rtol=1e-7)


def test_init_hash_is_stable_and_sensitive():
    spec = small()
    a = tr.draw_init(spec)
    b = {k: v.copy() for k, v in a.items()}
    assert tr.init_hash(a) == tr.init_hash(b) and len(tr.init_hash(a)) >= 16
    b["W0"][0, 0] += 1e-12
    assert tr.init_hash(a) != tr.init_hash(b)
    assert tr.init_hash(None) == ""
    assert spec.content_hash(tr.init_hash(a)) != spec.content_hash(tr.init_hash(b))


@pytest.mark.parametrize(
    "bad, msg",
    [
        (lambda d: {k: v for k, v in d.items() if k != "X"}, "missing"),
        (lambda d: {**d, "Z": d["X"]}, "unknown"),
        (lambda d: {**d, "X": d["X"][:-1]}, "X must have shape"),
        (lambda d: {**d, "W0": d["W0"][:, :2]}, "W0 must have shape"),
        (lambda d: {**d, "Y": np.full_like(d["Y"], np.nan)}, "non-finite"),
    ],
)
def test_bad_init_raises(bad, msg):
    spec = small()
    with pytest.raises(ValueError, match=f"^init: .*{msg}"):
        run_grid(spec, init=bad(tr.draw_init(spec)), device="cpu")


def test_minibatch_draws_are_shared_deterministic_and_matter():
    spec = small(batch_size=4)
    b1, b2 = tr.draw_batches(spec), tr.draw_batches(spec)
    assert b1.shape == (spec.steps, 4) and (b1 >= 0).all() and (b1 < spec.n_samples).all()
    np.testing.assert_array_equal(b1, b2)
    assert tr.draw_batches(dataclasses.replace(spec, batch_size=None)) is None
    # a longer run starts with the same draws
    np.testing.assert_array_equal(tr.draw_batches(dataclasses.replace(spec, steps=80))[: spec.steps], b1)
    mini = run_grid(spec, device="cpu")
    full = run_grid(dataclasses.replace(spec, batch_size=None), device="cpu")
    assert not np.array_equal(mini.measure, full.measure)
    np.testing.assert_array_equal(mini.measure, run_grid(spec, device="cpu").measure)


def test_offset_every_step_differs_from_offset_once():
    spec = small(phase_space="offset_vs_lr", x_range=(-2.0, 0.5), y_range=(-1.5, 1.5))
    once = run_grid(spec, device="cpu")
    every = run_grid(dataclasses.replace(spec, offset_every_step=True), device="cpu")
    assert not np.array_equal(once.measure, every.measure)


# ------------------------------------------------------------------------------------ dtype, device, controls


def test_float32_runs_and_mostly_agrees_with_float64():
    spec = small(resolution=(6, 6), steps=40)
    r64 = run_grid(spec, device="cpu")
    r32 = run_grid(dataclasses.replace(spec, dtype="float32"), device="cpu")
    assert r32.measure.dtype == np.float64
    assert (r32.converged == r64.converged).mean() >= 0.8


def test_float32_resolves_only_wide_enough_views():
    assert tr.float32_resolves(tr.preset("tanh"))
    assert tr.float32_resolves(tr.preset("offset"))
    narrow = tr.preset("tanh", x_range=(1.0, 1.0 + 1e-6), resolution=256)
    assert not tr.float32_resolves(narrow)
    assert not tr.float32_resolves(tr.preset("tanh", y_range=(2.0, 2.0 + 1e-6), resolution=256))
    # an offset far below the weights' own size cannot move float32 weights between neighbouring pixels
    assert not tr.float32_resolves(tr.preset("offset", x_range=(-9.0, -8.9), resolution=256))
    assert tr.float32_resolves(tr.preset("offset", x_range=(-1.0, -0.9), resolution=256))


def test_device_is_resolved_and_missing_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        spec = small(resolution=(3, 3), steps=25)
        gpu = run_grid(spec, device="cuda")
        cpu = run_grid(spec, device="cpu")
        assert (gpu.converged == cpu.converged).mean() >= 0.75
    else:
        with pytest.raises(ValueError, match="^device:"):
            run_grid(small(), device="cuda")


def test_progress_is_monotone_and_ends_at_one():
    seen = []
    run_grid(small(resolution=(6, 5)), progress=seen.append, device="cpu")
    assert seen and seen[-1] == 1.0
    assert all(0.0 <= a <= b <= 1.0 for a, b in zip(seen, seen[1:]))


def test_cancel_stops_with_a_clear_exception():
    ev = threading.Event()
    ev.set()
    with pytest.raises(Cancelled):
        run_grid(small(), cancel=ev, device="cpu")

    class CancelSoon:
        calls = 0

        def is_set(self):
            self.calls += 1
            return self.calls > 3

    with pytest.raises(Cancelled):
        run_grid(small(resolution=(16, 16), steps=200), cancel=CancelSoon(), device="cpu")


# ------------------------------------------------------------------------------------ presets and cost model


def test_registries_and_presets():
    assert set(tr.ACTIVATIONS) == {"tanh", "relu", "identity"}
    assert set(tr.PHASE_SPACES) == {"lr_vs_lr", "offset_vs_lr"}
    assert list(tr.PRESETS) == ["tanh", "relu", "linear", "tanh_minibatch", "tanh_single", "offset"]
    for name, p in tr.PRESETS.items():
        assert p.name == name and p.title and p.description and "\n" not in p.description
        assert isinstance(p.spec, GridSpec) and p.spec.steps == 500
    assert tr.PRESETS["linear"].spec.activation == "identity" and tr.PRESETS["linear"].spec.n_samples == 16
    assert tr.PRESETS["tanh_minibatch"].spec.batch_size == 16
    assert tr.PRESETS["tanh_single"].spec.n_samples == 1
    assert tr.PRESETS["offset"].spec.phase_space == "offset_vs_lr"
    assert tr.PRESETS["tanh"].spec.n_samples == 272 and tr.PRESETS["tanh"].spec.x_range == (-3.0, 6.0)
    over = tr.preset("relu", resolution=32, seed=5)
    assert over.activation == "relu" and over.resolution == (32, 32) and over.seed == 5
    with pytest.raises(ValueError, match="^preset:"):
        tr.preset("sigmoid")
    with pytest.raises(ValueError, match="^steps:"):
        tr.preset("tanh", steps=3)


@pytest.mark.parametrize("name", list(tr.PRESETS))
def test_each_preset_view_shows_the_boundary(name):
    """Each preset's initial view, at full training length but a coarse 8 x 8, has both regions."""
    res = run_grid(tr.preset(name, resolution=8), device="cpu")
    assert 0.05 < res.converged.mean() < 0.95, res.converged.astype(int)


def test_cost_model():
    spec = tr.preset("tanh", resolution=(128, 64))
    assert tr.network_steps(spec) == 128 * 64 * 500
    assert tr.estimate_seconds(spec) > 0
    assert tr.estimate_seconds(tr.preset("tanh", resolution=(256, 64))) == pytest.approx(
        2 * tr.estimate_seconds(spec))
    assert tr.estimate_seconds(dataclasses.replace(spec, dtype="float32")) < tr.estimate_seconds(spec)
    assert tr.estimate_seconds(tr.preset("linear", resolution=(128, 64))) < tr.estimate_seconds(spec)


# --------------------------------------------------------------------------------------- task function, CLI


def test_run_to_dir_writes_the_contract_files(tmp_path):
    spec = small(resolution=(12, 10))
    seen = []
    tr.run_to_dir(spec, tmp_path, progress=lambda f, info=None: seen.append(f))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["computed.npy", "converged.npy", "dimension.json", "image.png", "measure.npy", "spec.json",
                     "stats.json"]
    assert np.load(tmp_path / "computed.npy").all()  # an exact grid: every pixel trained
    measure = np.load(tmp_path / "measure.npy")
    np.testing.assert_array_equal(measure, run_grid(spec, device="cpu").measure)
    np.testing.assert_array_equal(np.load(tmp_path / "converged.npy"), measure < 0)
    assert GridSpec.from_json((tmp_path / "spec.json").read_text()) == spec
    assert (tmp_path / "image.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(json.loads((tmp_path / "dimension.json").read_text()), dict)
    assert seen[-1] == 1.0


def test_cli_writes_the_files(tmp_path):
    out = tmp_path / "grid"
    cmd = [sys.executable, "-m", "engine.trainability", "--preset", "tanh", "--resolution", "6", "5", "--steps",
           "25", "--width", "4", "--x-range", "-1", "2", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    spec = GridSpec.from_json((out / "spec.json").read_text())
    assert spec == tr.preset("tanh", resolution=(6, 5), steps=25, width=4, x_range=(-1.0, 2.0))
    assert np.load(out / "measure.npy").shape == (5, 6)



def test_cli_rejects_bad_flags_with_the_spec_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--preset", "relu", "--steps", "5", "--out", str(tmp_path / "x")])
    assert "steps:" in str(e.value)
    assert not (tmp_path / "x").exists()
    args = cli._parse_args(["--preset", "tanh_minibatch", "--full-batch", "--resolution", "9", "--out", "o",
                            "--phase-space", "offset_vs_lr", "--offset-every-step", "--x-range", "-2", "0"])
    spec = cli.spec_from_args(args)
    assert spec.batch_size is None and spec.resolution == (9, 9) and spec.offset_every_step
    assert spec.x_range == (-2.0, 0.0) and spec.phase_space == "offset_vs_lr"


def test_worker_processes_give_the_same_pixels_as_threads(monkeypatch):
    """Big CPU grids run their tiles in worker processes; that must not change a single pixel."""
    spec = tr.preset("tanh", resolution=(20, 12), steps=60)
    monkeypatch.setenv("FRACTAL_LAB_GRID_PROCESSES", "0")
    threads = tr.run_grid(spec, device="cpu")
    monkeypatch.setenv("FRACTAL_LAB_GRID_PROCESSES", "1")
    monkeypatch.setattr(executor, "workers", lambda device: 2)
    seen = []
    procs = tr.run_grid(spec, device="cpu", progress=seen.append)
    np.testing.assert_array_equal(threads.measure, procs.measure)
    assert seen and seen[-1] == 1.0
