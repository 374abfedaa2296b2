"""Many tiny networks trained side by side in one tensor program: the arithmetic of every trainability grid.

It trains a *set of pixels* (same data and initial weights, each its own hyperparameters) and returns every
pixel's loss curve; :mod:`engine.trainability.grid` turns the curves into the convergence measure.
"""

# Why it is written the way it is (measured on a 2-core CPU, see ``bench/trainability.py``):
#
# * **Hand-derived gradients, no autograd.** The network is ``out = act(X W0 a) W1 / n`` with a per-activation
#   gain ``a``; its gradient is three lines of algebra, and autograd's bookkeeping would cost more than the
#   arithmetic for networks this small.
# * **Weights stored pre-scaled and transposed.** ``Ut = a * W0.T`` (shape ``(n, n)`` per network) and
#   ``V = W1 / n`` fold the mean-field constants into the parameters, so the forward pass is one matrix product
#   and one activation. Networks sit side by side in a *slot* axis: the forward pass for all slots is a single
#   ``(S*n, n) @ (n, N)`` product against the shared inputs, and the input-layer gradient a single
#   ``(S*n, N) @ (N, n)`` product. The two per-network reductions (output and output-layer gradient) run over
#   contiguous memory.
# * **Few passes over the big ``(S, n, N)`` arrays.** For tanh the backward pass is ``HR = H*r`` (whose row sums
#   are the output-layer gradient) and ``D = r - H*HR = (1 - H**2) * r``, written in place: two passes.
# * **Cache-sized slot sets.** ``S`` is chosen so the working arrays stay in a core's L2 cache; bigger batches
#   were measured *slower* on this CPU.
# * **Refilled slots.** A pixel whose loss became non-finite is finished (every later loss is non-finite too),
#   and its slot is immediately given the next pixel of the tile. The slot set therefore stays full and diverged
#   pixels stop costing compute. A pixel's arithmetic never mixes with its neighbours' (each row of a matrix
#   product is computed on its own), but BLAS picks a different kernel per matrix shape, so a pixel computed in
#   another tile or slot count can differ in the last bit, which the dynamics amplify to ~1e-6 near the
#   boundary. The tests therefore check verdicts and a relative bound across shapes, and bit for bit only where
#   the shapes are the same (the same grid run twice, threads against processes).
# * **Plain eager PyTorch.** ``torch.compile`` (inductor, CPU) was tried on the whole step and on its elementwise
#   middle; both ran slower than this code here, and compiling costs seconds per shape, so there is no compiled
#   path to go wrong.

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

#: Gain ``a`` folded into the input-layer weights: ``H = act(X @ (a * W0))``.
#: tanh: ``tanh(sqrt(2) * X W0 / sqrt(n))``; relu: ``sqrt(2) * relu(X W0 / sqrt(n)) = relu(sqrt(2) X W0 / sqrt(n))``.
_GAIN_NUMERATOR = {"tanh": math.sqrt(2.0), "relu": math.sqrt(2.0), "identity": 1.0}

#: Working-set budget per slot set, in elements of one ``(S, n, N)`` array. Chosen by measurement (thread CPU
#: time per network-step, S from 8 to 96; differences within ~20% noise on a shared machine): on this CPU
#: (1.25 MiB L2 per core) 12 to 24 float64 networks of width 16 on 272 samples were fastest, 32 to 64 for
#: float32; past that the arrays leave the cache and it gets slower.
_SLOT_BUDGET = {torch.float64: 24 * 16 * 272, torch.float32: 48 * 16 * 272}
_MAX_SLOTS_CPU = 512
_MAX_SLOTS_CUDA = 65536
#: On a GPU: elements per ``(S, n, N)`` array (2**27: 1 GiB in float64, two such arrays), so tens of thousands of
#: networks share each launch; and the steps between two looks at the losses (each look waits for the GPU).
_CUDA_ELEMENTS = 1 << 27
_CUDA_SYNC_EVERY = 16


@dataclass
class Problem:
    """Everything the pixels of one grid share, as tensors on one device.

    ``Ut0``/``V0`` are the initial weights in the kernel's scaled layout; ``batches`` holds the minibatch row
    indices drawn for every step (``None`` for full batch), identical for every pixel.
    """

    activation: str
    X: torch.Tensor  # (N, n)
    XT: torch.Tensor  # (n, N)
    Yrow: torch.Tensor  # (1, 1, N)
    Ut0: torch.Tensor  # (n, n) = gain * W0.T
    V0: torch.Tensor  # (n,) = W1 / n
    gain: float
    steps: int
    batches: torch.Tensor | None  # (T, B) int64
    coef_u: float  # Ut -= lr0 * coef_u * V[k] * (D @ X)[k, i]   (see make_problem)
    coef_v: float  # V -= lr1 * coef_v * sum_m H[k, m] r[m]

    @property
    def width(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])


def make_problem(
    activation: str,
    X: np.ndarray,
    Y: np.ndarray,
    W0: np.ndarray,
    W1: np.ndarray,
    steps: int,
    batches: np.ndarray | None,
    dtype: torch.dtype,
    device: torch.device,
) -> Problem:
    """Move the shared data to ``device`` in ``dtype`` and precompute the kernel's constants.

    The loss is ``mean((out - Y)**2)`` over the rows a gradient sees (all N, or the B rows of a minibatch), so
    with ``U = a W0^T`` and ``V = W1 / n``:
    ``dL/dU[k, i] = (2 / rows) * V[k] * sum_m act'[k, m] r[m] X[m, i]`` and
    ``dL/dV[k] = (2 / rows) * sum_m H[k, m] r[m]``.
    A gradient step on ``W0`` (``W0 -= lr0 * dL/dW0``) is ``U -= lr0 * a**2 * dL/dU``, and on ``W1`` it is
    ``V -= lr1 / n**2 * dL/dV``; ``coef_u`` and ``coef_v`` are those factors without the learning rates.
    """
    n = int(W0.shape[0])
    N = int(X.shape[0])
    gain = _GAIN_NUMERATOR[activation] / math.sqrt(n)
    rows = N if batches is None else int(batches.shape[1])

    def t(a):
        return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(device=device, dtype=dtype)

    Xt = t(X).contiguous()
    return Problem(
        activation=activation,
        X=Xt,
        XT=Xt.t().contiguous(),
        Yrow=t(np.asarray(Y).reshape(1, 1, N)),
        Ut0=t(gain * np.asarray(W0, dtype=np.float64).T).contiguous(),
        V0=t(np.asarray(W1, dtype=np.float64).reshape(n) / n),
        gain=gain,
        steps=int(steps),
        batches=None if batches is None else torch.as_tensor(np.asarray(batches, dtype=np.int64)).to(device),
        coef_u=2.0 * gain * gain / rows,
        coef_v=2.0 / (rows * n * n),
    )


def default_slots(problem: Problem) -> int:
    """How many networks to train side by side: cache-sized on a CPU, as many as fit on a GPU."""
    per_net = problem.width * problem.n_samples
    if problem.X.device.type == "cuda":
        return max(1, min(_MAX_SLOTS_CUDA, _CUDA_ELEMENTS // per_net))
    budget = _SLOT_BUDGET.get(problem.X.dtype, _SLOT_BUDGET[torch.float32])
    return max(1, min(_MAX_SLOTS_CPU, budget // per_net))


class _SlotKernel:
    """``S`` networks' weights and one training step for all of them, in place.

    The state (``Ut``, ``V``, the per-slot learning rates and offsets) and every scratch buffer are allocated
    once, and all views are made once: a step is a dozen tensor ops and no allocations, which matters because
    on a CPU the per-op overhead is comparable to the arithmetic of a cache-sized slot set.
    """

    def __init__(self, problem: Problem, S: int, offset_every_step: bool):
        p = problem
        self.p, self.S = p, S
        n, N = p.width, p.n_samples
        kw = dict(dtype=p.X.dtype, device=p.X.device)
        # state
        self.Ut = torch.empty(S, n, n, **kw)
        self.V = torch.empty(S, n, **kw)
        self.lr_u = torch.zeros(S, **kw)  # lr0 * coef_u
        self.lr_v = torch.zeros(S, **kw)  # lr1 * coef_v
        self.off_u = torch.zeros(S, **kw) if offset_every_step else None  # gain * offset, re-added every step
        # scratch
        self.H = torch.empty(S, n, N, **kw)
        self.HR = torch.empty(S, n, N, **kw)
        self.out = torch.empty(S, 1, N, **kw)
        self.DX = torch.empty(S, n, n, **kw)
        self.grad_v = torch.empty(S, n, **kw)
        self.scale_u = torch.empty(S, n, 1, **kw)
        self.loss = torch.empty(S, **kw)
        self.loss3 = self.loss.view(S, 1, 1)
        # views, made once
        self.Ut2 = self.Ut.view(S * n, n)
        self.H2 = self.H.view(S * n, N)
        self.HR2 = self.HR.view(S * n, N)
        self.DX2 = self.DX.view(S * n, n)
        self.V_row = self.V.view(S, 1, n)
        self.V_col = self.V.view(S, n, 1)
        self.lr_u3 = self.lr_u.view(S, 1, 1)
        self.lr_v2 = self.lr_v.view(S, 1)
        self.off_u3 = None if self.off_u is None else self.off_u.view(S, 1, 1)
        self.r2 = self.out.view(S, N)
        self.r_col = self.out.view(S, N, 1)
        self.neg_y = (-p.Yrow).expand(S, 1, N)
        self.r_wide = self.out.expand(S, n, N)

    def state(self) -> tuple[torch.Tensor, ...]:
        return tuple(t for t in (self.Ut, self.V, self.lr_u, self.lr_v, self.off_u) if t is not None)

    def step(self, t_slots: torch.Tensor | None = None) -> torch.Tensor:
        """Take one gradient step and return every slot's loss *before* it, times N (a ``(S,)`` tensor that the
        next step overwrites). ``t_slots``: each slot's step index, which picks its minibatch (minibatch only)."""
        p, S = self.p, self.S
        n = p.width
        H, r = self.H, self.out
        torch.mm(self.Ut2, p.XT, out=self.H2)
        if p.activation == "tanh":
            H.tanh_()
        elif p.activation == "relu":
            H.clamp_min_(0.0)
        torch.baddbmm(self.neg_y, self.V_row, H, out=r)  # residuals out - Y, shape (S, 1, N)
        torch.bmm(r, self.r_col, out=self.loss3)  # N * loss (one op; vecdot is 4); the caller divides

        if p.batches is None:
            HR = torch.mul(H, r, out=self.HR)
            grad_v = torch.sum(HR, 2, out=self.grad_v)
            if p.activation == "identity":  # the same gradient row for every hidden unit
                DX = torch.mm(self.r2, p.X).view(S, 1, n).expand(S, n, n)
            else:
                if p.activation == "tanh":
                    torch.addcmul(self.r_wide, H, HR, value=-1.0, out=HR)  # (1 - H^2) r, in place
                else:  # relu: H >= 0, so sign(H) is its derivative mask (5x faster than a bool mask here)
                    torch.sign(H, out=HR).mul_(r)
                DX = self.DX
                torch.mm(self.HR2, p.X, out=self.DX2)
        else:
            idx = p.batches[t_slots]  # (S, B): this step's rows for each slot
            B = idx.shape[1]
            Hb = torch.gather(H, 2, idx.view(S, 1, B).expand(S, n, B))
            rb = torch.gather(r, 2, idx.view(S, 1, B))
            HRb = Hb * rb
            grad_v = HRb.sum(2)
            if p.activation == "tanh":
                Db = rb - Hb * HRb
            elif p.activation == "relu":
                Db = torch.sign(Hb).mul_(rb)
            else:
                Db = rb.expand(S, n, B)
            DX = torch.bmm(Db, p.X[idx])

        torch.mul(self.lr_u3, self.V_col, out=self.scale_u)  # uses V before its own update
        self.Ut.addcmul_(self.scale_u, DX, value=-1.0)
        self.V.addcmul_(self.lr_v2, grad_v, value=-1.0)
        if self.off_u3 is not None:
            self.Ut.add_(self.off_u3)
        return self.loss


def train_pixels(
    problem: Problem,
    lr0: np.ndarray,
    lr1: np.ndarray,
    offset: np.ndarray,
    offset_every_step: bool = False,
    slots: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    sync_every: int | None = None,
) -> tuple[np.ndarray, int]:
    """Train one network per pixel and return ``(losses, steps_run)``.

    ``lr0``, ``lr1``, ``offset``: float64 arrays of shape ``(P,)`` (learning rates of the input and output
    layer, and the amount added to every entry of ``W0``). ``losses`` has shape ``(P, T)`` (float64): the
    full-batch loss before each of the ``T`` updates; once a loss is non-finite the pixel is finished and every
    later entry is ``+inf``. ``steps_run`` counts the network-steps actually computed (diverged pixels stop
    early). ``on_progress(work)`` receives increments of finished work in network-steps, counting a diverged
    pixel as ``T`` (its result is complete); ``should_stop()`` is polled and ends the run early (the caller
    raises). ``sync_every``: steps between two looks at the losses (default 1 on a CPU, 16 on a GPU, where each
    look waits for the device); a pixel that finishes inside a block idles in its slot until the block ends,
    which changes no recorded loss.
    """
    p = problem
    T = p.steps
    P = int(np.shape(lr0)[0])
    hist = np.full((P + 1, T), np.inf)  # the last row absorbs the writes of idle slots
    if P == 0:
        return hist[:0], 0
    dev, dt = p.X.device, p.X.dtype
    n = p.width

    lr_u_all = torch.as_tensor(np.asarray(lr0, np.float64) * p.coef_u).to(dev, dt)
    lr_v_all = torch.as_tensor(np.asarray(lr1, np.float64) * p.coef_v).to(dev, dt)
    off_all = torch.as_tensor(np.asarray(offset, np.float64) * p.gain).to(dev, dt)
    any_offset = bool(np.any(np.asarray(offset) != 0))

    S = max(1, min(slots or default_slots(p), P))
    k = _SlotKernel(p, S, offset_every_step)
    pid = np.full(S, P, dtype=np.int64)  # pixel in each slot; P = idle
    t = np.zeros(S, dtype=np.int64)  # each slot's step index
    next_pixel = 0

    def load(slot_idx: np.ndarray) -> None:
        """Give the next pixels of the queue to ``slot_idx``; slots left over go idle (learning rates 0)."""
        nonlocal next_pixel
        m = min(len(slot_idx), P - next_pixel)
        if m:
            s = torch.as_tensor(slot_idx[:m], device=dev)
            px = torch.arange(next_pixel, next_pixel + m, device=dev)
            init = p.Ut0.expand(m, n, n)
            if any_offset:
                init = init + off_all[px].view(m, 1, 1)
            k.Ut.index_copy_(0, s, init.contiguous())
            k.V.index_copy_(0, s, p.V0.expand(m, n).contiguous())
            k.lr_u.index_copy_(0, s, lr_u_all[px])
            k.lr_v.index_copy_(0, s, lr_v_all[px])
            if k.off_u is not None:
                k.off_u.index_copy_(0, s, off_all[px])
            pid[slot_idx[:m]] = np.arange(next_pixel, next_pixel + m)
            t[slot_idx[:m]] = 0
            next_pixel += m
        rest = slot_idx[m:]
        if len(rest):
            s = torch.as_tensor(rest, device=dev)
            for v in k.state()[2:]:
                v.index_fill_(0, s, 0.0)
            pid[rest] = P
            t[rest] = 0

    load(np.arange(S))
    active = pid < P
    n_active = int(active.sum())
    steps_run = 0
    step_count = 0
    on_cpu = dev.type == "cpu"
    K = max(1, min(T, int(sync_every or (1 if on_cpu else _CUDA_SYNC_EVERY))))
    Lbuf = None
    while K > 1:
        # K steps with no look at the losses (the GPU runs ahead), then one copy and the bookkeeping for all K.
        if Lbuf is None or Lbuf.shape[1] != k.S:
            Lbuf = torch.empty(K, k.S, dtype=dt, device=dev)
        t_dev = torch.tensor(t, device=dev) if p.batches is not None else None  # a copy: t stays the host's
        for j in range(K):
            Lbuf[j].copy_(k.step(None if t_dev is None else t_dev.clamp(max=T - 1)))
            if t_dev is not None:
                t_dev += 1
        L = Lbuf.cpu().numpy() / p.n_samples  # (K, S)
        fin = np.isfinite(L)
        first_bad = np.where(fin.all(axis=0), K, np.argmax(~fin, axis=0))
        count = np.where(active, np.minimum(np.minimum(K, T - t), first_bad + 1), 0)  # losses that count
        rows = np.arange(K)[:, None]
        keep = rows < count
        hist[np.broadcast_to(pid, L.shape)[keep], (t + rows)[keep]] = L[keep]
        steps_run += int(count.sum())
        done = active & ((t + count >= T) | (first_bad < count))
        t += count
        step_count += 1
        if done.any():
            finished = np.flatnonzero(done)
            if on_progress is not None:
                on_progress(T * len(finished))
            load(finished)
            active = pid < P
            if not active.any():
                return hist[:P], steps_run
        if should_stop is not None and should_stop():
            return hist[:P], steps_run
    while True:
        t_dev = torch.as_tensor(np.minimum(t, T - 1), device=dev) if p.batches is not None else None
        loss = k.step(t_dev)
        L = (loss.numpy() if on_cpu else loss.cpu().numpy()) / p.n_samples  # the mean squared error
        steps_run += n_active
        hist[pid, t] = L  # idle slots write into the spare last row
        t += active
        done = active & ((t >= T) | ~np.isfinite(L))
        step_count += 1
        if done.any():
            finished = np.flatnonzero(done)
            if on_progress is not None:
                on_progress(T * len(finished))  # a finished pixel is T units of work, diverged or not
            load(finished)
            active = pid < P
            n_active = int(active.sum())
            if n_active == 0:
                break
            if next_pixel >= P and n_active <= k.S // 2 and on_cpu:
                # The queue is empty and the slot set mostly idle: compact it so the tail costs only live
                # networks. A slot's arithmetic does not depend on its neighbours, so this changes no result.
                keep = np.flatnonzero(active)
                idx = torch.as_tensor(keep, device=dev)
                k2 = _SlotKernel(p, len(keep), offset_every_step)
                for dst, src in zip(k2.state(), k.state()):
                    dst.copy_(src[idx])
                k, pid, t = k2, pid[keep], t[keep]
                active = pid < P
        if should_stop is not None and step_count % 8 == 0 and should_stop():
            break
    return hist[:P], steps_run
