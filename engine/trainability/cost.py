"""What a grid costs before it runs, and whether float32 can tell its pixels apart: the numbers a page shows
beside "Compute" and the rule behind its silent switch to float64."""

from __future__ import annotations

import math

from engine.trainability.spec import FLOAT_EPS, ULPS_APART, GridSpec

#: Network-steps per second of ``run_grid`` on the project's 2-core CPU with the fused kernel (tanh preset,
#: 128x128, 500 steps, every pixel counted as 500 steps, 2 threads), measured by ``bench/trainability.py`` on a
#: machine shared with other work: 139k-209k (float64) and 334k-481k (float32) over four runs; the rates below sit
#: in the middle, so the runs fell within -19%..+23% of the estimate.
CPU_RATE = {"float64": 170_000.0, "float32": 400_000.0}
_TANH = 15  # the vectorised tanh, per hidden activation, in units of one multiply-add of the products
_STEP_OVERHEAD = 12_000  # per network-step whatever its size (calls, loops): ~0.7 us, measured on N = 1
_REF_COST = 272 * 16 * (2 * 16 + 10 + _TANH) + _STEP_OVERHEAD


def network_steps(spec: GridSpec) -> int:
    """Work of a grid in network-steps: pixels x steps (a diverged pixel counts in full, as in the benchmark)."""
    return spec.n_x * spec.n_y * spec.steps


def _cost_per_step(spec: GridSpec) -> float:
    """Relative work of one network-step: two ``N x n x n`` products plus ~10 elementwise passes over the
    ``N x n`` activations and the tanh (the forward pass only, plus a B-row backward pass, for minibatch
    training), plus a fixed cost per step that dominates tiny networks."""
    n, N = spec.width, spec.n_samples
    act = _TANH if spec.activation == "tanh" else 0
    if spec.batch_size is None:
        return N * n * (2 * n + 10 + act) + _STEP_OVERHEAD
    return N * n * (n + 10 + act) + spec.batch_size * n * (n + 8) + _STEP_OVERHEAD


def reference_rate(spec: GridSpec, network_steps_run: float, seconds: float) -> float:
    """The rate a grid ran at, in reference network-steps per second (the units of :data:`CPU_RATE` and of
    ``estimate_seconds``' ``rate``): its network-steps weighted by their cost relative to the reference network,
    so a measurement on one width or sample count calibrates the estimate of another."""
    return float(network_steps_run) * _cost_per_step(spec) / _REF_COST / float(seconds)


def estimate_seconds(spec: GridSpec, rate: float | None = None) -> float:
    """Seconds the grid should take (an upper bound: diverged pixels stop early). ``rate``: this machine's
    measured speed in reference network-steps per second (see :func:`reference_rate`; the job runner keeps it,
    ``runs.rates.measured``); None: the project's 2-core CPU constants (:data:`CPU_RATE`)."""
    if rate is None:
        rate = CPU_RATE[spec.dtype]
    elif not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate: must be a finite number of network-steps per second > 0, got {rate!r}")
    return network_steps(spec) * max(_cost_per_step(spec), 1.0) / _REF_COST / float(rate)


def float32_resolves(spec: GridSpec) -> bool:
    """Whether float32 can tell neighbouring pixels apart in this view.

    A learning rate enters the arithmetic as a relative factor, so neighbouring pixels need learning rates a few
    float32 ulps apart (relative spacing ``10**dx - 1``). An offset is added to weights of order one, so there
    the *absolute* spacing ``offset * (10**dx - 1)`` must be a few ulps of ``max(1, offset)``; the tightest
    pixel is the smallest offset of the view.
    """
    eps = ULPS_APART * FLOAT_EPS["float32"]
    rel_x = math.expm1((spec.x_range[1] - spec.x_range[0]) / (spec.n_x - 1) * math.log(10.0))
    rel_y = math.expm1((spec.y_range[1] - spec.y_range[0]) / (spec.n_y - 1) * math.log(10.0))
    if spec.phase_space == "offset_vs_lr":
        rel_x *= min(1.0, 10.0 ** spec.x_range[0])
    return bool(rel_x >= eps and rel_y >= eps)


#: The most a view may cost to start on its own, when a link or a preset (not the user's "Compute") opened it:
#: the estimated time of a 256 x 256, 500-step tanh grid in float64 on this machine. A link can name any size,
#: so without a limit one URL could occupy the server for years; a costlier view waits for "Compute". Both sides
#: use the constants, never a measured rate: whether a link starts work must not depend on a machine's history.
AUTO_COMPUTE_LIMIT_S = estimate_seconds(GridSpec(activation="tanh", resolution=(256, 256), steps=500,
                                                 dtype="float64"))


def auto_compute_ok(spec: GridSpec) -> bool:
    """Whether ``spec`` is cheap enough to start without being asked (see :data:`AUTO_COMPUTE_LIMIT_S`)."""
    return estimate_seconds(spec) <= AUTO_COMPUTE_LIMIT_S
