"""The trainability kernel compiled for the CPU: every training step of every pixel in one numba loop nest.

The eager torch kernel (:mod:`.kernels`) pays Python dispatch and a pass over memory for each of a dozen small ops
per step; here a call trains a run of pixels start to finish with no Python in between, so what is left is the
arithmetic. It is the default on a CPU (``run_grid(kernel="auto")``); the eager kernel stays as the reference and
as the CUDA path.
"""

# How it is built (measured on the project's 2-core CPU, see ``bench/trainability.py``):
#
# * **One network at a time, start to finish.** A pixel's network (the same scaled layout as the eager kernel:
#   ``U = gain * W0.T``, ``V = W1 / n``) is trained in its own loop nest until its ``T`` losses are recorded or
#   one is non-finite (early exit: a diverged pixel stops at once, and the next pixel starts). Its arrays
#   (``H``: n x N, ``X``) stay in the core's cache. No pixel's arithmetic ever depends on which tile, chunk or
#   thread it ran in, so results are bit for bit the same across tilings and thread counts, and
#   ``pixel_loss_curve`` reproduces a grid pixel exactly.
# * **The two products through BLAS, everything else fused.** ``H = U @ X.T`` and ``DX = D @ X`` (and the
#   two matrix-vector products) are ``np.dot`` calls that numba turns into direct single-threaded BLAS calls,
#   which run near the machine's matrix peak; the activation, the residual, the backward elementwise pass and the
#   updates are compiled loops, the activation fused with the residual's accumulation.
# * **A vectorisable tanh.** numba's ``math.tanh`` is a scalar libm call; :func:`_tanh64`/:func:`_tanh32` are
#   branch-free (selects only) so LLVM vectorises them: ``tanh = (2^k E - 1) / (2^k E + 1)`` with ``E = e^r`` on
#   the reduced argument (Cephes' coefficients). Measured against numpy's tanh over [-25, 25] and tiny
#   arguments: at most 5 ulp in float64 (mean 0.5), 3 ulp in float32; ``tanh(+-inf) = +-1``, NaN stays NaN.
# * **Strict IEEE arithmetic.** ``fastmath=False`` (no reassociation, no assumptions about inf/NaN) and
#   ``error_model="numpy"`` (a division by zero is inf/NaN, as in torch, not a Python exception). The one
#   exception is contraction (a*b+c as one FMA) inside the two tanh polynomials, where it is part of the
#   approximation as in libm/SLEEF: 1.3x (float64) to 1.5x (float32) faster, the same ulp bounds.
# * **Threads, not processes.** The compiled code releases the GIL (``nogil=True``), so the grid's tile threads
#   run in parallel without worker processes (which cost ~2 s to start).

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from typing import Callable

import numpy as np


def _configure_numba() -> None:
    """Before numba is first imported: where its disk cache goes, and 512-bit vectors on AVX-512 CPUs.

    numba caches compiled code beside this file, or in ``$NUMBA_CACHE_DIR``: a user cache where this folder is
    read-only. LLVM's default tuning keeps loops at 256 bits on AVX-512 CPUs (older chips slowed their clock);
    here the vectorised tanh ran 1.3x (float64) to 1.5x (float32) faster at 512 bits, so unless
    ``$NUMBA_CPU_FEATURES`` is set the host's features are used without that preference.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    if "NUMBA_CACHE_DIR" not in os.environ and not os.access(here, os.W_OK):
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(os.path.expanduser("~"), ".cache", "fractal-lab", "numba")
    if "NUMBA_CPU_FEATURES" in os.environ or "numba" in sys.modules:
        return
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features().flatten()
    except Exception:  # pragma: no cover - numba then uses its own defaults
        return
    if "+avx512f" in features.split(","):
        os.environ["NUMBA_CPU_FEATURES"] = features + ",-prefer-256-bit"


try:
    _configure_numba()
    import numba
    from numba import njit, types
    from numba.extending import overload
except ImportError:  # pragma: no cover - numba is in requirements.txt; without it the eager kernel runs
    numba = None

AVAILABLE = numba is not None

#: Work per call into the compiled code (in multiply-adds), so progress and cancel are seen every ~10-50 ms.
_CALL_WORK = 2e8

_ACT_CODE = {"tanh": 0, "relu": 1, "identity": 2}

if AVAILABLE:
    _JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")
    _JIT_MATH = dict(_JIT, fastmath={"contract"})

    @njit(**_JIT_MATH)
    def _tanh64(x):
        """tanh in float64, branch-free so a loop over it vectorises (see the module notes)."""
        xa = abs(x)
        y = 2.0 * (xa if xa < 20.0 else 20.0)  # tanh(20) rounds to 1; NaN and inf become 20 here
        fn = np.floor(y * 1.4426950408889634073599 + 0.5)  # y = k ln2 + r, |r| <= ln2 / 2
        r = (y - fn * 6.93145751953125e-1) - fn * 1.42860682030941723212e-6
        rr = r * r
        pp = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr + 9.99999999999999999910e-1)
        qq = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
              + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0
        a = qq + pp  # e^r = a / b (Cephes' exp)
        b = qq - pp
        two_k = np.float64(np.int64(1) << np.int64(fn))
        num = (pp + pp) if fn == 0.0 else two_k * a - b  # k = 0: a - b = 2 pp exactly, without cancellation
        t = num / (two_k * a + b)
        t = t if xa == xa else x  # NaN in, NaN out
        return math.copysign(t, x)

    @njit(**_JIT_MATH)
    def _tanh32(x):
        """tanh in float32 arithmetic, branch-free (Cephes' expf polynomial for e^r - 1)."""
        xa = abs(x)
        y = np.float32(2.0) * (xa if xa < np.float32(9.0) else np.float32(9.0))
        fn = np.floor(y * np.float32(1.44269504088896341) + np.float32(0.5))
        r = (y - fn * np.float32(0.693359375)) - fn * np.float32(-2.12194440e-4)
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        em1 = r + (r * r) * p  # e^r - 1
        two_k = np.float32(np.int32(1) << np.int32(fn))
        t = (two_k * em1 + (two_k - np.float32(1.0))) / (two_k * em1 + (two_k + np.float32(1.0)))
        t = t if xa == xa else x
        return math.copysign(t, x)

    def _tanh(x):  # pragma: no cover - a typing stub: the compiled code picks _tanh64 or _tanh32 below
        return math.tanh(x)

    @overload(_tanh)
    def _tanh_impl(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            return lambda x: _tanh32(x)
        return lambda x: _tanh64(x)

    @njit(**_JIT)
    def _train(act, X, XT, Y, U0, V0, lr_u, lr_v, off, off_every, batches, hist, U, V, H, r, gv, DX, Xb, Db, pos,
               budget):
        """Train pixels ``pos[0]..`` (resuming pixel ``pos[0]`` at step ``pos[1]``) until ``budget`` steps are
        done or every pixel is; ``pos[2]`` counts the steps computed. ``hist[p, t]``: the loss before update t.
        ``act``: 0 tanh, 1 relu, 2 identity; ``batches``: (T, B) row indices, or (0, 1) for full batch."""
        n = U.shape[0]
        N = X.shape[0]
        P, T = hist.shape
        B = batches.shape[1]
        minibatch = batches.shape[0] > 0
        Nf = X.dtype.type(N)
        zero = X.dtype.type(0.0)
        p, t = pos[0], pos[1]
        done = 0
        while p < P and done < budget:
            if t == 0:  # a new pixel: initial weights (+ its offset), like the eager kernel's slot load
                o = off[p]
                for k in range(n):
                    for i in range(n):
                        U[k, i] = U0[k, i] + o
                    V[k] = V0[k]
            lu, lv = lr_u[p], lr_v[p]
            # forward: H = act(U X^T), r = V H - Y, loss = r.r
            np.dot(U, XT, H)
            for m in range(N):
                r[m] = -Y[m]
            for k in range(n):
                v = V[k]
                if act == 0:
                    for m in range(N):
                        h = _tanh(H[k, m])
                        H[k, m] = h
                        r[m] += v * h
                elif act == 1:
                    for m in range(N):
                        z = H[k, m]
                        h = zero if z < zero else z  # max(z, 0) that keeps NaN, like torch's clamp_min
                        H[k, m] = h
                        r[m] += v * h
                else:
                    for m in range(N):
                        r[m] += v * H[k, m]
            L = np.dot(r, r) / Nf
            hist[p, t] = L
            done += 1
            step = t
            t += 1
            if not np.isfinite(L) or t >= T:  # finished (a diverged pixel stays non-finite: stop now)
                p += 1
                t = 0
                continue
            # backward: gv = dL/dV (unscaled), DX = D X with D = act'(Z) * r
            if not minibatch:
                np.dot(H, r, gv)
                if act == 2:
                    row = np.dot(r, X)
                    for k in range(n):
                        for i in range(n):
                            DX[k, i] = row[i]
                else:
                    for k in range(n):
                        if act == 0:
                            for m in range(N):
                                h = H[k, m]
                                H[k, m] = r[m] - h * (h * r[m])  # (1 - h^2) r, as the eager kernel rounds it
                        else:
                            for m in range(N):
                                h = H[k, m]
                                H[k, m] = r[m] if h > zero else h * r[m]  # sign(h) r for h >= 0 (or NaN)
                    np.dot(H, X, DX)
            else:
                idx = batches[step]
                for b in range(B):
                    for i in range(n):
                        Xb[b, i] = X[idx[b], i]
                for k in range(n):
                    g = zero
                    for b in range(B):
                        h = H[k, idx[b]]
                        rb = r[idx[b]]
                        hr = h * rb
                        g += hr
                        if act == 0:
                            Db[k, b] = rb - h * hr
                        elif act == 1:
                            Db[k, b] = rb if h > zero else h * rb
                        else:
                            Db[k, b] = rb
                    gv[k] = g
                np.dot(Db, Xb, DX)
            # update (U with V before V's own update), then the offset re-added if asked
            for k in range(n):
                su = lu * V[k]
                for i in range(n):
                    U[k, i] -= su * DX[k, i]
            for k in range(n):
                V[k] -= lv * gv[k]
            if off_every:
                o = off[p]
                for k in range(n):
                    for i in range(n):
                        U[k, i] += o
        pos[0], pos[1] = p, t
        pos[2] += done


_blas_lock = threading.Lock()
_blas_depth = 0
_blas_limiter = None


@contextlib.contextmanager
def single_threaded_blas():
    """numpy/scipy's OpenBLAS single-threaded while fused kernels run (re-entrant; restored afterwards): the
    products are small, and BLAS's own threads fighting the tile threads made them 2-60x slower (measured)."""
    global _blas_depth, _blas_limiter
    with _blas_lock:
        if _blas_depth == 0:
            try:
                from threadpoolctl import threadpool_limits

                _blas_limiter = threadpool_limits(limits=1, user_api="blas")
            except Exception:  # pragma: no cover - threadpoolctl missing: correct, only slower
                _blas_limiter = None
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0 and _blas_limiter is not None:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def train_pixels(
    problem,
    lr0: np.ndarray,
    lr1: np.ndarray,
    offset: np.ndarray,
    offset_every_step: bool = False,
    slots: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, int]:
    """:func:`engine.trainability.kernels.train_pixels` on the compiled kernel: same arguments (``problem`` on
    the CPU; ``slots`` is accepted and ignored: each network has its own loop nest), same results to rounding."""
    if not AVAILABLE:
        raise ValueError("kernel: 'fused' needs numba, which is not installed (pip install numba, or kernel='eager')")
    p = problem
    if p.X.device.type != "cpu":
        raise ValueError(f"kernel: 'fused' runs on the CPU only, got device {p.X.device.type!r} (use 'eager')")
    T = p.steps
    P = int(np.shape(lr0)[0])
    hist = np.full((P, T), np.inf)
    if P == 0:
        return hist, 0
    X = p.X.numpy()
    dt = X.dtype
    n, N = p.width, p.n_samples
    XT = p.XT.numpy()
    Y = np.ascontiguousarray(p.Yrow.numpy().reshape(N))
    U0, V0 = p.Ut0.numpy(), p.V0.numpy()
    lr_u = (np.asarray(lr0, np.float64) * p.coef_u).astype(dt)
    lr_v = (np.asarray(lr1, np.float64) * p.coef_v).astype(dt)
    off = (np.asarray(offset, np.float64) * p.gain).astype(dt)
    batches = np.zeros((0, 1), np.int64) if p.batches is None else np.ascontiguousarray(p.batches.numpy())
    B = batches.shape[1]
    U, V = np.empty((n, n), dt), np.empty(n, dt)
    H, r, gv, DX = np.empty((n, N), dt), np.empty(N, dt), np.empty(n, dt), np.empty((n, n), dt)
    Xb, Db = np.empty((B, n), dt), np.empty((n, B), dt)
    pos = np.zeros(3, np.int64)
    budget = max(1, int(_CALL_WORK / (N * n * (2 * n + 10))))
    act = _ACT_CODE[p.activation]
    with single_threaded_blas():
        while pos[0] < P:
            before = int(pos[0])
            _train(act, X, XT, Y, U0, V0, lr_u, lr_v, off, bool(offset_every_step), batches, hist, U, V, H, r, gv,
                   DX, Xb, Db, pos, budget)
            if on_progress is not None and pos[0] > before:
                on_progress(T * (int(pos[0]) - before))
            if should_stop is not None and pos[0] < P and should_stop():
                break
    return hist, int(pos[2])
