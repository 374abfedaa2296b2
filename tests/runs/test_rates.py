"""Calibration: each finished grid job records its rate (reference network-steps per second) per device type and
dtype; the median of the last 20 turns into the cost estimate. Asserted as arithmetic, never as wall time (how
close the estimate comes to a real run is bench/estimates.py's figure)."""

from __future__ import annotations

import dataclasses
import statistics

import pytest

import runs
from cache import default_store
from engine.trainability import cost, results
from engine.trainability.spec import GridSpec
from runs import rates

SPEC = GridSpec(activation="tanh", width=8, steps=100, resolution=(16, 16))


def stats(steps=25_600, elapsed=0.5, dtype="float64", device="cpu", scheduler=None, run=None, **more):
    """A grid's stats.json: ``steps`` network-steps in all, ``run`` of them run (default: every one)."""
    return {"network_steps": steps if run is None else run, "network_steps_full": steps, "elapsed_s": elapsed,
            "dtype": dtype, "device": device, "scheduler": scheduler, **more}


def test_the_rate_is_in_the_cost_models_reference_units(env):
    rate = rates.record(SPEC, stats())
    assert rate == pytest.approx(25_600 * cost._cost_per_step(SPEC) / cost._REF_COST / 0.5, rel=1e-12)
    assert rate == pytest.approx(cost.reference_rate(SPEC, 25_600, 0.5), rel=1e-12)
    assert rates.history("float64") == [rate] and rates.measured("float64") == rate
    # a wider network costs more per step: the same seconds for the same steps is a higher reference rate
    wide = dataclasses.replace(SPEC, width=16)
    assert rates.rate_of(wide, stats()) > rate
    # the estimate at that rate gives back the grid's own seconds, whatever its width
    assert cost.estimate_seconds(dataclasses.replace(SPEC, steps=100), rate=rate) == pytest.approx(
        SPEC.n_x * SPEC.n_y * 100 / 25_600 * 0.5)


def test_median_of_the_last_twenty_per_device_and_dtype(env):
    for i in range(25):
        rates.record(SPEC, stats(elapsed=1.0 + i))
    kept = rates.history("float64")
    assert len(kept) == rates.HISTORY == 20
    assert kept == [rates.rate_of(SPEC, stats(elapsed=1.0 + i)) for i in range(5, 25)]
    assert rates.measured("float64") == statistics.median(kept)
    assert rates.measured("float32") is None and rates.measured("float64", device="cuda") is None
    rates.record(SPEC, stats(dtype="float32", device="cuda:1"))
    assert rates.history("float32", device="cuda") == [rates.rate_of(SPEC, stats())]
    assert rates.history("float64") == kept


@pytest.mark.parametrize("bad", [
    stats(steps=None), stats(elapsed=0.0), stats(elapsed=float("inf")), stats(steps=0), {"elapsed_s": 1.0},
    stats(scheduler="tcp://127.0.0.1:8786"), "not stats", None,
])
def test_stats_without_usable_numbers_or_from_a_cluster_record_nothing(env, bad):
    assert rates.record(SPEC, bad) is None
    assert rates.measured("float64") is None


def test_a_damaged_file_is_ignored_and_rewritten(env):
    path = default_store().root / rates.FILE
    for damage in (b"{not json", b"[1, 2]", b'{"rates": {"cpu/float64": [{"rate": -1}, {"rate": "x"}, 3]}}'):
        path.write_bytes(damage)
        assert rates.measured("float64") is None
        rate = rates.record(SPEC, stats())
        assert rates.history("float64") == [rate]
        path.unlink()
    with pytest.raises(ValueError, match="rate:"):
        rates.record_rate("float64", "cpu", float("nan"))


def test_estimate_seconds_takes_a_rate_and_the_auto_compute_limit_does_not(env):
    spec = GridSpec(activation="tanh", resolution=(64, 64), steps=500)
    assert cost.estimate_seconds(spec, rate=None) == cost.estimate_seconds(spec)
    assert cost.estimate_seconds(spec, rate=cost.CPU_RATE["float64"]) == pytest.approx(cost.estimate_seconds(spec))
    assert cost.estimate_seconds(spec, rate=2 * cost.CPU_RATE["float64"]) == pytest.approx(
        cost.estimate_seconds(spec) / 2)
    for bad in (0.0, -1.0, float("nan"), float("inf"), "fast", True):
        with pytest.raises(ValueError, match="rate:"):
            cost.estimate_seconds(spec, rate=bad)
    limit, ok = cost.AUTO_COMPUTE_LIMIT_S, cost.auto_compute_ok(spec)
    for _ in range(3):  # a very slow machine on record: a link's limit must not move
        rates.record(spec, stats(elapsed=1e6))
    assert cost.AUTO_COMPUTE_LIMIT_S == limit and cost.auto_compute_ok(spec) == ok
    assert rates.calibrated_seconds(spec) == cost.estimate_seconds(spec, rate=rates.measured("float64"))
    assert rates.calibrated_seconds(spec) > 1000 * cost.estimate_seconds(spec)


def test_real_grid_jobs_calibrate_the_estimate_of_a_third_size(env):
    """Two real grids through the job runner record their rates from their stats.json; the estimate of a third
    size is that arithmetic on the median."""
    specs = [GridSpec(activation="tanh", resolution=(n, n), steps=100) for n in (32, 48)]
    ids = [runs.submit("grid", s) for s in specs]
    expected = []
    for job, spec in zip(ids, specs):
        st = runs.wait(job, timeout=300)
        assert st.state == "done", st.message
        rate_stats = results.load(runs.result_dir(job)).stats
        assert rate_stats["network_steps_full"] == spec.n_x * spec.n_y * spec.steps
        assert rate_stats["device"] == "cpu" and rate_stats["dtype"] == "float64"
        assert 0 < rate_stats["overhead_s"] < rate_stats["elapsed_s"]  # the kernel loaded outside the grid's clock
        expected.append(rates.rate_of(spec, rate_stats))
    assert sorted(rates.history("float64")) == sorted(expected)
    measured = rates.measured("float64")
    assert measured == statistics.median(expected)
    third = GridSpec(activation="tanh", resolution=(64, 64), steps=100)
    assert cost.estimate_seconds(third, rate=measured) == pytest.approx(
        64 * 64 * 100 * cost._cost_per_step(third) / cost._REF_COST / measured, rel=1e-12)
    # a stored grid submitted again runs nothing and records nothing
    assert runs.submit("grid", specs[0]) == ids[0]
    assert len(rates.history("float64")) == 2


def test_an_experiments_own_rate_comes_before_its_dtypes(env):
    """ReLU grids stop early far more often than tanh grids: once one ran here, ReLU estimates use its rate;
    an experiment never timed falls back to the dtype's rate, and every record still counts for the dtype."""
    relu = dataclasses.replace(SPEC, activation="relu")
    assert rates.kind_of(SPEC) == "tanh/" + SPEC.phase_space
    tanh_rate = rates.record(SPEC, stats(elapsed=1.0))
    assert rates.measured("float64", kind=rates.kind_of(relu)) == tanh_rate  # no ReLU grid yet: the dtype's
    relu_rate = rates.record(relu, stats(elapsed=0.25))
    assert relu_rate == pytest.approx(rates.rate_of(relu, stats(elapsed=0.25))) and relu_rate != tanh_rate
    assert rates.measured("float64", kind=rates.kind_of(relu)) == relu_rate
    assert rates.measured("float64", kind=rates.kind_of(SPEC)) == tanh_rate
    assert rates.history("float64") == [tanh_rate, relu_rate]
    assert rates.calibrated_seconds(relu) == pytest.approx(cost.estimate_seconds(relu, rate=relu_rate))
    assert rates.calibrated_seconds(SPEC) == pytest.approx(cost.estimate_seconds(SPEC, rate=tanh_rate))


def test_the_overhead_is_kept_apart_from_the_rate_and_added_once_to_the_estimate(env):
    """A job's overhead (store lookup, kernel load, files written) is about the same for any size: spread over a
    small grid's pixels it would make every larger grid's estimate too slow. The rate leaves it out; the
    estimate adds it once."""
    rate = rates.record(SPEC, stats(elapsed=0.9, overhead_s=0.4))
    assert rate == pytest.approx(cost.reference_rate(SPEC, 25_600, 0.5), rel=1e-12)  # 0.9 s - 0.4 s of overhead
    assert rates.overhead("float64") == 0.4 and rates.overhead("float64", kind=rates.kind_of(SPEC)) == 0.4
    big = dataclasses.replace(SPEC, resolution=(64, 64))
    assert rates.calibrated_seconds(big) == pytest.approx(0.4 + 16 * 0.5, rel=1e-12)  # 16x the pixels of SPEC
    assert rates.calibrated_seconds(SPEC) == pytest.approx(0.9, rel=1e-12)  # its own time back
    rates.record(SPEC, stats(elapsed=2.0, overhead_s=0.6))
    assert rates.overhead("float64") == pytest.approx(0.5)  # the median
    # an older result without overhead_s, or a nonsense one, counts whole and records no overhead
    assert rates.rate_of(SPEC, stats(elapsed=0.5)) == pytest.approx(cost.reference_rate(SPEC, 25_600, 0.5))
    for bad in (-1.0, 0.5, 7.0, float("nan"), True, "0.1"):
        assert rates.overhead_of(stats(elapsed=0.5, overhead_s=bad)) is None, bad
    with pytest.raises(ValueError, match="^overhead:"):
        rates.record_rate("float64", "cpu", 1000.0, overhead=-0.1)


def test_the_share_of_steps_run_is_kept_per_experiment_and_the_preset_gives_it_before(env):
    """Speed is the hardware's (steps actually run per second); how many steps a grid runs is the experiment's
    (ReLU networks diverge and stop early far more often than tanh ones). A ReLU grid's estimate uses the tanh
    grids' speed with ReLU's own share once one ran here, the preset's share before that."""
    from engine.trainability.presets import PRESETS

    speed = rates.record(SPEC, stats(elapsed=0.5, run=12_800))  # half of its steps run: the speed counts those
    assert speed == pytest.approx(cost.reference_rate(SPEC, 12_800, 0.5), rel=1e-12)
    assert rates.stepped("float64", kind=rates.kind_of(SPEC)) == 0.5
    relu = dataclasses.replace(SPEC, activation="relu")
    prior = PRESETS["relu"].stepped
    assert 0 < prior < PRESETS["tanh"].stepped < 1 and rates.stepped("float64", kind=rates.kind_of(relu)) == prior
    assert rates.calibrated_seconds(relu) == pytest.approx(cost.estimate_seconds(relu, rate=speed) * prior)
    rates.record(relu, stats(elapsed=0.25, run=6_400))
    assert rates.stepped("float64", kind=rates.kind_of(relu)) == 0.25  # its own, measured
    assert rates.stepped("float64", kind="sigmoid/lr_vs_lr") is None  # no preset, nothing run: every step counts
    with pytest.raises(ValueError, match="^stepped:"):
        rates.record_rate("float64", "cpu", 1000.0, stepped=1.5)


def test_rates_of_the_previous_version_are_not_read(env):
    """Version 1 stored effective rates (every step counted whether run or not): read as speeds they would
    make every estimate wrong, so they are dropped and the next grid starts the history again."""
    path = default_store().root / rates.FILE
    path.write_text('{"version": 1, "rates": {"cpu/float64": [{"rate": 5.0, "t": 0, "key": "old"}]}}')
    assert rates.measured("float64") is None
    rates.record(SPEC, stats())
    assert rates.history("float64") == [rates.rate_of(SPEC, stats())]
