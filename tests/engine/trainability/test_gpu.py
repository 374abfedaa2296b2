"""The CUDA path (the eager kernel, tens of thousands of networks per launch): the same verdicts as the CPU.

Runs only where CUDA is present; elsewhere every test is skipped with a message saying so.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import trainability as tr
from engine.trainability import grid, kernels

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device here: the GPU path is tested where one is present")


@pytest.mark.parametrize("name", list(tr.PRESETS))
def test_cuda_grid_agrees_with_the_cpu(name):
    spec = tr.preset(name, resolution=32, steps=100)
    gpu = tr.run_grid(spec, device="cuda")
    cpu = tr.run_grid(spec, device="cpu")
    assert (gpu.converged == cpu.converged).mean() >= 0.99
    rel = np.abs(gpu.measure - cpu.measure) / np.abs(cpu.measure)
    assert np.median(rel) < 1e-6


def test_cuda_runs_big_batches_and_fewer_syncs_change_no_loss():
    spec = tr.preset("tanh_minibatch", resolution=24, steps=60)
    problem = grid._problem(spec, None, torch.device("cuda"))
    assert kernels.default_slots(grid._problem(tr.preset("tanh"), None, torch.device("cuda"))) >= 20_000
    xs, ys = np.meshgrid(spec.x_values, spec.y_values)
    lr0, lr1, off = tr.hyperparameters(spec, xs.ravel(), ys.ravel())
    every, n1 = kernels.train_pixels(problem, lr0, lr1, off, slots=100, sync_every=1)
    blocks, n16 = kernels.train_pixels(problem, lr0, lr1, off, slots=100, sync_every=16)
    assert n1 == n16  # the same pixels stopped at the same steps
    m1, m16 = tr.convergence_measure(every), tr.convergence_measure(blocks)
    np.testing.assert_array_equal(m1 < 0, m16 < 0)
    assert np.median(np.abs(m1 - m16) / np.abs(m1)) < 1e-9  # same shapes: the same numbers


def test_cuda_progress_and_cancel():
    seen = []
    tr.run_grid(tr.preset("tanh", resolution=40, steps=40), device="cuda", progress=seen.append)
    assert seen and seen[-1] == 1.0

    class CancelSoon:
        calls = 0

        def is_set(self):
            self.calls += 1
            return self.calls > 2

    with pytest.raises(tr.grid.Cancelled):
        tr.run_grid(tr.preset("tanh", resolution=300, steps=200), device="cuda", cancel=CancelSoon())


def test_fused_is_refused_on_cuda_and_auto_picks_eager():
    with pytest.raises(ValueError, match="^kernel:"):
        tr.run_grid(tr.preset("tanh", resolution=4, steps=20), device="cuda", kernel="fused")
    assert grid.resolve_kernel("auto", torch.device("cuda")) == "eager"
