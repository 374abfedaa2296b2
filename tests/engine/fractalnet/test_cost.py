"""engine.fractalnet.cost and variants: a run's cost before it starts, the speed measurement, variant matching."""

from __future__ import annotations

import math

import pytest

from engine.fractalnet.cost import expected_train_flops, forward_flops, measure_speed, steps_per_epoch, training_cost
from engine.fractalnet.model import FractalNetConfig
from engine.fractalnet.variants import OVERRIDABLE, match_variant, variant_config


def test_training_cost_counts_steps_and_drop_path_flops():
    cfg = variant_config("micro", num_classes=10, in_channels=1)
    cost = training_cost(cfg, (8, 8), n_train=100, n_test=30, epochs=3, batch_size=32)
    assert cost["steps_per_epoch"] == steps_per_epoch(100, 32) == 4 and cost["steps"] == 12
    assert cost["forward_flops"] == forward_flops(cfg, (8, 8))
    assert cost["train_flops"] == pytest.approx(expected_train_flops(cfg, (8, 8)) * 100 * 3)
    # drop-path computes less than every path would (forward + backward ~ 3x forward)
    assert cost["train_flops"] < 3 * forward_flops(cfg, (8, 8)) * 100 * 3
    columns = sum(forward_flops(cfg, (8, 8), k) for k in range(cfg.max_columns))
    assert cost["eval_flops"] == pytest.approx((forward_flops(cfg, (8, 8)) + columns) * 30 * 3)
    assert cost["total_flops"] == pytest.approx(cost["train_flops"] + cost["eval_flops"])


def test_measure_speed_times_real_steps():
    speed = measure_speed(variant_config("micro", in_channels=1), (1, 8, 8), batch=4, device="cpu", steps=1)
    assert math.isfinite(speed) and speed > 0


def test_match_variant_can_ignore_the_training_knobs():
    cfg = variant_config("micro", num_classes=4, in_channels=1, join="learned", local_drop=0.3)
    assert match_variant(cfg) is None  # not the registry's micro as a whole
    assert match_variant(cfg, ignore=OVERRIDABLE) == "micro"  # but its architecture
    assert match_variant(FractalNetConfig(columns=2, filters=(8, 8)), ignore=OVERRIDABLE) is None
