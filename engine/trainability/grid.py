"""The fractal boundary of neural-network trainability (Sohl-Dickstein, 2024), as a grid of tiny networks.

Every pixel trains the same one-hidden-layer network (same data, same initial weights) with its own two
hyperparameters and is coloured by whether training converged; the boundary between the regions is fractal.
This module turns a spec into the data, the pixels' hyperparameters, the tiles' work and the measure, faithful
to the authors' notebook; the arithmetic is in :mod:`.fused` (CPU) and :mod:`.kernels` (reference, GPU), where
tiles run in :mod:`.executor`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from engine.device import resolve_device
from engine.errors import Cancelled
from engine.settings import env_flag
import engine.trainability.executor as executor
from engine.trainability import kernels
from engine.trainability.cost import network_steps
from engine.trainability.kernels import make_problem
from engine.trainability.spec import BOUNDARY_MARGIN, GridSpec, GridTile

DTYPES = {"float64": torch.float64, "float32": torch.float32}

#: How a grid is computed (not *what*: no kernel choice is part of a spec or its result key). ``fused``: the
#: compiled CPU kernel (:mod:`.fused`); ``eager``: the torch kernel (:mod:`.kernels`), the reference and the
#: CUDA path; ``auto``: fused on a CPU where numba imports, eager otherwise.
KERNELS = ("auto", "fused", "eager")


def resolve_kernel(kernel: str | None, device: torch.device) -> str:
    """``"fused"`` or ``"eager"`` for ``kernel`` on ``device`` (None means ``"auto"``).

    The two kernels compute the same network and differ only in rounding order, like two CPUs or two BLAS
    builds: their verdicts differ no more often than the eager kernel's own verdicts do when the same network's
    units are numbered differently (>= 99.9% agreement on the tanh, ReLU, linear and single-point presets at
    64x64; in the minibatch and offset views rounding order alone decides ~0.5-1% of boundary pixels, whichever
    kernel runs). So the choice is left out of the store's key: a stored grid is a valid answer from either.
    """
    kernel = "auto" if kernel is None else kernel
    if kernel not in KERNELS:
        raise ValueError(f"kernel: must be one of {', '.join(KERNELS)}, got {kernel!r}")
    if kernel == "fused" and device.type != "cpu":
        raise ValueError(f"kernel: 'fused' runs on the CPU only, got device {device.type!r} (use 'eager' or 'auto')")
    if kernel == "eager" or device.type != "cpu":
        return "eager"
    if not _fused().AVAILABLE:
        if kernel == "fused":
            raise ValueError("kernel: 'fused' needs numba, which is not installed (pip install numba, or 'eager')")
        return "eager"
    return "fused"


def _fused():
    """The compiled kernel's module, imported on first use (numba takes ~1 s to import; pages need not wait)."""
    from engine.trainability import fused

    return fused


def _train(kernel: str):
    return _fused().train_pixels if kernel == "fused" else kernels.train_pixels


def _blas_guard(kernel: str):
    """numpy/scipy's BLAS single-threaded while the fused kernel runs (see fused.single_threaded_blas)."""
    return _fused().single_threaded_blas() if kernel == "fused" else contextlib.nullcontext()


#: On a GPU a tile's loss history (pixels x steps, float64, on the host) may take this much: 256 MiB, so a tile
#: of a 500-step grid is ~259^2 pixels, about twice the networks the GPU trains side by side.
_CUDA_TILE_HISTORY_BYTES = 1 << 28


@dataclass
class GridResult:
    """A computed grid. ``measure`` and ``converged`` have shape ``(n_y, n_x)``; row i is ``y_values[i]``."""

    spec: GridSpec
    measure: np.ndarray
    converged: np.ndarray
    x_values: np.ndarray
    y_values: np.ndarray
    elapsed_s: float
    steps_run: int = 0  # network-steps actually computed (diverged pixels stop early)
    init_hash: str | None = None
    computed: np.ndarray | None = None  # (n_y, n_x) bool: trained, or reused exactly; False = inferred
    reused: int = 0  # pixels taken from ``known`` (never trained here)
    refinement: dict[str, Any] = field(default_factory=dict)  # see :func:`refinement_stats`

    def __post_init__(self) -> None:
        if self.computed is None:
            self.computed = np.ones(self.measure.shape, dtype=bool)


@dataclass
class TileResult:
    tile: GridTile
    measure: np.ndarray
    converged: np.ndarray
    steps_run: int


# ------------------------------------------------------------------------------------------------ the measure

MAX_VALUE = 1e6


def convergence_measure(losses: Any) -> np.ndarray:
    """The paper's convergence measure of loss curves ``losses`` (array ``(..., T)``), as float64 ``(...)``.

    Non-finite losses become 1e6; ``v = v / v[0]``; clip at 1e6; converged iff ``mean(v[-20:]) < 1``; the
    measure is ``-sum(v)`` if converged, else ``sum(1/v)``. So ``measure < 0`` iff converged, and the boundary
    is the zero crossing. (The authors' code turns an infinite loss into NaN; here the measure is never NaN.)
    """
    v = np.asarray(losses, dtype=np.float64)
    if v.ndim == 0 or v.shape[-1] < 1:
        raise ValueError("losses: needs a last axis of at least one loss per curve")
    v = np.where(np.isfinite(v), v, MAX_VALUE)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = v / v[..., :1]
        v = np.where(np.isnan(v), MAX_VALUE, v)  # 0/0 (a loss of exactly zero at init): count as the cap
        v = np.minimum(v, MAX_VALUE)
        converged = v[..., -20:].mean(axis=-1) < 1
        return np.where(converged, -v.sum(axis=-1), (1.0 / v).sum(axis=-1))


# ---------------------------------------------------------------------------------------------------- the data

INIT_KEYS = ("X", "Y", "W0", "W1")


def draw_init(spec: GridSpec) -> dict[str, np.ndarray]:
    """The data and initial weights that ``init=None`` uses: float64 draws from ``numpy.random.default_rng(seed)``,
    in the order W0 ``(n, n)``, W1 ``(n, 1)``, X ``(N, n)``, Y ``(N, 1)`` (weights first, as the authors do)."""
    rng = np.random.default_rng(spec.seed)
    n, N = spec.width, spec.n_samples
    W0 = rng.standard_normal((n, n))
    W1 = rng.standard_normal((n, 1))
    X = rng.standard_normal((N, n))
    Y = rng.standard_normal((N, 1))
    return {"X": X, "Y": Y, "W0": W0, "W1": W1}


def draw_batches(spec: GridSpec) -> np.ndarray | None:
    """The minibatch rows of every step, shape ``(steps, batch_size)`` (None for full batch): drawn with
    replacement from ``default_rng([seed, 1])``, shared by every pixel, and independent of ``init=``."""
    if spec.batch_size is None:
        return None
    rng = np.random.default_rng([spec.seed, 1])
    return rng.integers(0, spec.n_samples, size=(spec.steps, spec.batch_size), dtype=np.int64)


def check_init(spec: GridSpec, init: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate user-given arrays against the spec's shapes; return float64 copies with canonical shapes."""
    if not isinstance(init, Mapping):
        raise ValueError(f"init: must be None or a dict of arrays {{{', '.join(INIT_KEYS)}}}")
    missing = [k for k in INIT_KEYS if k not in init]
    extra = sorted(set(init) - set(INIT_KEYS))
    if missing or extra:
        raise ValueError(f"init: needs exactly the arrays {', '.join(INIT_KEYS)} (missing {missing}, unknown {extra})")
    n, N = spec.width, spec.n_samples
    want = {"X": (N, n), "Y": (N, 1), "W0": (n, n), "W1": (n, 1)}
    out = {}
    for k in INIT_KEYS:
        a = np.asarray(init[k], dtype=np.float64)
        if k in ("Y", "W1") and a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.shape != want[k]:
            raise ValueError(
                f"init: {k} must have shape {want[k]} for width {n} and dataset size {N}, got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"init: {k} contains non-finite values")
        out[k] = np.ascontiguousarray(a)
    return out


def init_hash(init: Mapping[str, Any] | None) -> str:
    """A stable digest of user-given arrays (shapes and float64 values), for the cache key; '' for None.
    A 1-D ``Y`` or ``W1`` hashes like the column it is used as, so equal computations share a key."""
    if init is None:
        return ""
    h = hashlib.sha256()
    for k in sorted(init):
        a = np.ascontiguousarray(np.asarray(init[k], dtype=np.float64))
        if k in ("Y", "W1") and a.ndim == 1:
            a = a.reshape(-1, 1)
        h.update(f"{k}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def hyperparameters(spec: GridSpec, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel ``(lr0, lr1, offset)`` (float64) for log10 coordinates ``x`` and ``y`` (same shape)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if spec.phase_space == "lr_vs_lr":
        return np.power(10.0, x), np.power(10.0, y), np.zeros_like(x)
    lr = np.power(10.0, y)
    return lr, lr.copy(), np.power(10.0, x)


def _problem(spec: GridSpec, init: Mapping[str, Any] | None, device: torch.device):
    data = draw_init(spec) if init is None else check_init(spec, init)
    return make_problem(spec.activation, data["X"], data["Y"], data["W0"], data["W1"], spec.steps,
                        draw_batches(spec), DTYPES[spec.dtype], device)


# ------------------------------------------------------------------------------------------------ tiles, grids


def _train_tile(problem, tile: GridTile, on_progress=None, should_stop=None, kernel: str = "eager") -> TileResult:
    xs, ys = np.meshgrid(tile.x_values, tile.y_values)  # (rows, cols), row-major pixel order
    lr0, lr1, offset = hyperparameters(tile.grid, xs.ravel(), ys.ravel())
    losses, steps_run = _train(kernel)(
        problem, lr0, lr1, offset, tile.grid.offset_every_step, on_progress=on_progress, should_stop=should_stop
    )
    measure = convergence_measure(losses).reshape(tile.shape)
    return TileResult(tile, measure, measure < 0, steps_run)


_PROCESS_PROBLEMS: dict[str, Any] = {}


def _tile_in_process(payload, tile: GridTile, on_progress, should_stop) -> TileResult:
    """A tile in a worker process: the problem (data, weights) is built once per process and spec.
    ``payload``: ``(init, kernel)``."""
    init, kernel = payload
    key = tile.grid.content_hash()
    if key not in _PROCESS_PROBLEMS:
        _PROCESS_PROBLEMS.clear()
        _PROCESS_PROBLEMS[key] = _problem(tile.grid, init, torch.device("cpu"))
    with _blas_guard(kernel):
        return _train_tile(_PROCESS_PROBLEMS[key], tile, on_progress, should_stop, kernel)


def run_tile(tile: GridTile, init=None, progress=None, cancel=None, device=None, kernel="auto") -> TileResult:
    """Compute one tile on its own (what a cluster worker would run). Same numbers as inside ``run_grid``
    (with the fused kernel bit for bit; with the eager one to rounding, see :func:`run_grid`)."""
    dev = resolve_device(device)
    kernel = resolve_kernel(kernel, dev)
    problem = _problem(tile.grid, init, dev)
    total = tile.shape[0] * tile.shape[1] * tile.grid.steps
    done = [0]

    def on_progress(work):
        done[0] += work
        if progress is not None:
            progress(min(1.0, done[0] / total))

    stop = (lambda: cancel.is_set()) if cancel is not None else None
    with executor.single_threaded_ops(dev), _blas_guard(kernel):
        res = _train_tile(problem, tile, on_progress, stop, kernel)
    if cancel is not None and cancel.is_set():
        raise Cancelled("trainability tile cancelled")
    return res


def run_grid(spec: GridSpec, init=None, progress=None, cancel=None, device=None, kernel="auto", *, known=None,
             on_partial=None, scheduler=None) -> GridResult:
    """Train one network per pixel of ``spec`` and return the convergence measure of each.

    ``init``: None (draw from ``spec.seed``, see :func:`draw_init`) or a dict of arrays ``{X, Y, W0, W1}`` used
    exactly as given. ``progress(fraction)`` is called from the calling thread as tiles advance; when
    ``cancel.is_set()`` becomes true the work stops and :class:`engine.errors.Cancelled` is raised.
    ``device``: None/"auto" (CUDA if available), "cpu", "cuda", ... ``kernel``: "auto" (the compiled fused kernel
    on a CPU, the eager torch kernel on a GPU), "fused" or "eager" (see :func:`resolve_kernel`). The fused kernel
    gives every pixel bit for bit the same numbers whatever the tiling, batch or thread count; the eager one
    agrees with itself across tilings to ~1e-6 and in every verdict but a rare boundary pixel (BLAS rounds per
    shape).

    Which pixels are trained follows ``spec.refine`` (:func:`engine.trainability.refine.refine` over
    :func:`run_pixels`): ``known=(measure, mask)`` gives pixels already known exactly (e.g. from a stored zoom,
    see :mod:`.reuse`), never trained again; ``on_partial(measure, computed, fraction)`` sees the map after each
    refinement pass; ``scheduler``: a Dask scheduler address (None or "local": this machine). A plain exact grid
    (none of these) runs as whole tiles, with the same pixels.
    """
    if not isinstance(spec, GridSpec):
        raise ValueError(f"spec: must be a GridSpec, got {type(spec).__name__}")
    t0 = time.perf_counter()
    dev = resolve_device(device)
    kernel = resolve_kernel(kernel, dev)
    if spec.refine == "exact" and known is None and on_partial is None and scheduler is None:
        return _run_tiles(spec, init, progress, cancel, dev, kernel, t0)
    return _run_refined(spec, init, progress, cancel, dev, kernel, t0, known, on_partial, scheduler)


def warm_up(spec: GridSpec, device=None, kernel="auto") -> None:
    """Load (or compile) the kernel ``spec`` runs on, by training a 2 x 2 grid of it for 20 steps: a job then
    times its grid apart from numba's start (~0.5 s per process), which a measured rate must leave out."""
    run_grid(dataclasses.replace(spec, resolution=(2, 2), steps=20, refine="exact", lattice=None), device=device,
             kernel=kernel)


def _run_tiles(spec: GridSpec, init, progress, cancel, dev: torch.device, kernel: str, t0: float) -> GridResult:
    """Every pixel, as whole tiles on threads or processes (the exact grid's path)."""
    problem = _problem(spec, init, dev)
    n_workers = executor.workers(dev)
    side = executor.default_tile_size(spec, dev, n_workers)
    if dev.type == "cuda":  # one batched program per big tile (tens of thousands of networks per launch)
        side = max(side, int(math.sqrt(_CUDA_TILE_HISTORY_BYTES / 8 / spec.steps)))
    elif kernel == "fused":  # no slot set to fill: small tiles only even out the threads' work
        side = min(side, 16)
    tiles = spec.tiles(side)
    n_workers = min(n_workers, len(tiles))
    total = network_steps(spec)
    # The fused kernel releases the GIL, so threads keep every core busy: processes only when asked for.
    use_processes = executor.use_processes(total, dev, n_workers) and (
        kernel == "eager" or env_flag("FRACTAL_LAB_GRID_PROCESSES", False))
    with _blas_guard(kernel):
        if use_processes:
            from concurrent.futures.process import BrokenProcessPool

            payload = (None if init is None else check_init(spec, init), kernel)
            try:
                results = executor.run_in_processes(tiles, _tile_in_process, payload, n_workers, total, progress,
                                                    cancel)
                return _assemble(spec, results, init, t0, progress)
            except BrokenProcessPool:
                pass  # a worker could not start (see run_in_processes): the same result on threads
        work = functools.partial(_train_tile, problem, kernel=kernel)
        results = executor.run_in_threads(tiles, work, n_workers, total, progress, cancel, dev)
    return _assemble(spec, results, init, t0, progress)


def _assemble(spec: GridSpec, results, init, t0: float, progress) -> GridResult:
    """Stitch tile results into the grid's arrays (tiles never overlap, so order does not matter)."""
    measure = np.empty(spec.shape, dtype=np.float64)
    steps_run = 0
    for r in results:
        (r0, r1), (c0, c1) = r.tile.rows, r.tile.cols
        measure[r0:r1, c0:c1] = r.measure
        steps_run += r.steps_run
    if progress is not None:
        progress(1.0)
    pixels = spec.n_x * spec.n_y
    return GridResult(spec=spec, measure=measure, converged=measure < 0, x_values=spec.x_values,
                      y_values=spec.y_values, elapsed_s=time.perf_counter() - t0, steps_run=steps_run,
                      init_hash=init_hash(init) or None,
                      refinement=refinement_stats("exact", pixels, pixels, 0, pixels, passes=1))


# ------------------------------------------------------------------------------------ any set of pixels, refined


def refinement_stats(mode: str, pixels: int, computed: int, reused: int, trained: int, passes: int,
                     sample_size: int = 0, sample_errors: int = 0, error_rate: float = 0.0,
                     error_ci: tuple[float, float] = (0.0, 0.0)) -> dict[str, Any]:
    """What :attr:`GridResult.refinement` holds: ``computed`` pixels are exact (``reused`` of them from a stored
    grid, the rest trained here); ``inferred`` ones took their block's verdict; ``trained`` counts every network
    trained here, the error sample included; ``error_rate``/``error_ci``: the sample's disagreement rate and its
    Clopper-Pearson 95% interval (0 when nothing was inferred)."""
    return {"mode": mode, "pixels": int(pixels), "computed": int(computed), "reused": int(reused),
            "inferred": int(pixels - computed), "trained": int(trained), "passes": int(passes),
            "sample_size": int(sample_size), "sample_errors": int(sample_errors), "error_rate": float(error_rate),
            "error_ci": [float(error_ci[0]), float(error_ci[1])]}


def _check_indices(spec: GridSpec, flat_indices) -> np.ndarray:
    a = np.asarray(flat_indices)
    if a.ndim != 1 or not (a.size == 0 or a.dtype.kind in "iu"):
        raise ValueError(f"flat_indices: must be a 1-D array of integer pixel indices, got {a.dtype} {a.shape}")
    a = a.astype(np.int64, copy=False)
    n = spec.n_x * spec.n_y
    if a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"flat_indices: must lie in [0, {n}) (row-major over {spec.n_y} x {spec.n_x}), "
                         f"got {int(a.min())}..{int(a.max())}")
    return a


def _check_known(spec: GridSpec, known) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``known=(measure, mask)`` checked against the grid: float measures, finite where the bool mask is set."""
    if known is None:
        return None, None
    try:
        measure, mask = known
    except (TypeError, ValueError):
        raise ValueError("known: must be None or a pair (measure, mask) of arrays of the grid's shape") from None
    measure, mask = np.asarray(measure), np.asarray(mask)
    if measure.shape != spec.shape or mask.shape != spec.shape or mask.dtype != np.bool_ or measure.dtype.kind != "f":
        raise ValueError(f"known: needs a float measure and a bool mask of shape {spec.shape}, got "
                         f"{measure.dtype} {measure.shape} and {mask.dtype} {mask.shape}")
    measure = measure.astype(np.float64)
    if not np.all(np.isfinite(measure[mask])):
        raise ValueError("known: the measure of a known pixel must be finite")
    return (measure, mask.copy()) if mask.any() else (None, None)


def _batch_size(spec: GridSpec, dev: torch.device, kernel: str, n_workers: int, count: int) -> int:
    """Pixels per batch: a tile's worth (see :func:`_run_tiles`), but at least two batches per worker."""
    if dev.type == "cuda":
        size = max(1, _CUDA_TILE_HISTORY_BYTES // (8 * spec.steps))
    else:
        side = max(1, min(32, int(math.sqrt(4_000_000 / spec.steps))))
        size = min(side, 16) ** 2 if kernel == "fused" else side * side
    return max(1, min(size, math.ceil(count / (2 * max(1, n_workers)))))


def _train_batch(problem, spec: GridSpec, batch: np.ndarray, kernel: str, on_progress=None,
                 should_stop=None) -> tuple[np.ndarray, int]:
    """The measure of pixels ``batch`` (row-major flat indices) and the network-steps run. The fused kernel
    trains each network on its own, so a pixel's bits do not depend on the batch it is in."""
    cols, rows = batch % spec.n_x, batch // spec.n_x
    lr0, lr1, offset = hyperparameters(spec, spec.x_values[cols], spec.y_values[rows])
    losses, steps_run = _train(kernel)(problem, lr0, lr1, offset, spec.offset_every_step, on_progress=on_progress,
                                       should_stop=should_stop)
    return convergence_measure(losses), int(steps_run)


_WORKER_PROBLEM: dict[tuple, Any] = {}
_WORKER_PROBLEM_LOCK = threading.Lock()


def _pixels_in_process(payload, batch: np.ndarray, on_progress, should_stop) -> tuple[np.ndarray, int]:
    """A batch in a worker process or on a Dask worker. ``payload``: ``(spec, init, kernel)``; the problem is
    built once per worker and grid (a Dask worker outlives grids, so the key names the data too). On a Dask
    worker with a GPU the batch runs there, on the eager kernel."""
    spec, init, kernel = payload
    from engine.trainability import cluster

    dev = torch.device(cluster.worker_device())
    if dev.type != "cpu":
        kernel = "eager"
    key = (spec.content_hash(), init_hash(init), str(dev))
    with _WORKER_PROBLEM_LOCK:  # a Dask worker may run several batches at once, in threads
        problem = _WORKER_PROBLEM.get(key)
        if problem is None:
            _WORKER_PROBLEM.clear()
            problem = _WORKER_PROBLEM[key] = _problem(spec, init, dev)
    with executor.single_threaded_ops(dev), _blas_guard(kernel):
        return _train_batch(problem, spec, batch, kernel, on_progress, should_stop)


def _scheduler(scheduler) -> str | None:
    """A Dask scheduler's address, or None for this machine (None, "" or "local")."""
    if scheduler is None:
        return None
    from engine.trainability import cluster

    return cluster.scheduler_address(scheduler)


def run_pixels(spec: GridSpec, flat_indices, init=None, progress=None, cancel=None, device=None, kernel="auto",
               scheduler=None) -> tuple[np.ndarray, int]:
    """The measure of the pixels ``flat_indices`` (row-major over ``spec.shape``) in that order, float64, and the
    network-steps run: batches on worker threads (processes only where :func:`run_grid` would use them), or
    tasks on the Dask scheduler at ``scheduler``. ``progress``/``cancel`` as in :func:`run_grid`. With the fused
    kernel every pixel has the bits it has in :func:`run_grid`, whichever batch or machine computed it."""
    if not isinstance(spec, GridSpec):
        raise ValueError(f"spec: must be a GridSpec, got {type(spec).__name__}")
    dev = resolve_device(device)
    kernel = resolve_kernel(kernel, dev)
    return _compute_pixels(spec, _check_indices(spec, flat_indices), init, progress, cancel, dev, kernel,
                           _scheduler(scheduler), {})


def _compute_pixels(spec: GridSpec, idx: np.ndarray, init, progress, cancel, dev: torch.device, kernel: str,
                    address: str | None, cache: dict) -> tuple[np.ndarray, int]:
    """:func:`run_pixels` once its arguments are checked; ``cache`` keeps the problem (and the checked init)
    between the passes of one grid."""
    if idx.size == 0:
        return np.empty(0, dtype=np.float64), 0
    total = int(idx.size) * spec.steps
    if address is not None:
        from engine.trainability import cluster

        if "cores" not in cache:
            cache["cores"] = max(1, cluster.cluster_info(address).cores)
        if "init" not in cache:
            cache["init"] = None if init is None else check_init(spec, init)
        batches = _batches(idx, _batch_size(spec, dev, kernel, cache["cores"], int(idx.size)))
        results = cluster.run_on_cluster(address, batches, _pixels_in_process, (spec, cache["init"], kernel), total,
                                         progress, cancel)
        return _join(results)
    if "problem" not in cache:
        cache["problem"] = _problem(spec, init, dev)
    n_workers = executor.workers(dev)
    batches = _batches(idx, _batch_size(spec, dev, kernel, n_workers, int(idx.size)))
    n_workers = min(n_workers, len(batches))
    use_processes = executor.use_processes(total, dev, n_workers) and (
        kernel == "eager" or env_flag("FRACTAL_LAB_GRID_PROCESSES", False))
    with _blas_guard(kernel):
        if use_processes:
            from concurrent.futures.process import BrokenProcessPool

            payload = (spec, None if init is None else check_init(spec, init), kernel)
            try:
                return _join(executor.run_in_processes(batches, _pixels_in_process, payload, n_workers, total,
                                                       progress, cancel))
            except BrokenProcessPool:
                pass  # as in _run_tiles: the same result on threads
        problem = cache["problem"]

        def work(batch, on_progress, should_stop):
            return _train_batch(problem, spec, batch, kernel, on_progress, should_stop)

        return _join(executor.run_in_threads(batches, work, n_workers, total, progress, cancel, dev))


def _batches(idx: np.ndarray, size: int) -> list[np.ndarray]:
    """``idx`` dealt into batches of at most ``size``: batch ``i`` takes every ``n``-th pixel from the ``i``-th,
    so each holds a like share of slow (converged) and quick (diverged, stopped early) networks and the threads
    of a pass finish together; contiguous runs of a map's rows left one thread idle at the end of a pass."""
    n = max(1, -(-idx.size // max(1, size)))
    return [idx[i::n] for i in range(n)]


def _join(results) -> tuple[np.ndarray, int]:
    """The measures of :func:`_batches`' batches put back in the order of the indices they were dealt from."""
    measures = [np.asarray(m) for m, _ in results]
    out = np.empty(sum(m.size for m in measures), dtype=np.float64)
    for i, m in enumerate(measures):
        out[i::len(measures)] = m
    return out, sum(s for _, s in results)


def _run_refined(spec: GridSpec, init, progress, cancel, dev: torch.device, kernel: str, t0: float, known,
                 on_partial, scheduler) -> GridResult:
    """:func:`run_grid` through :func:`engine.trainability.refine.refine`: passes of :func:`run_pixels`."""
    known_measure, known_mask = _check_known(spec, known)
    address = _scheduler(scheduler)
    from engine.trainability.refine import refine  # after the checks, so bad arguments fail first

    pixels = spec.n_x * spec.n_y
    reused = 0 if known_mask is None else int(known_mask.sum())
    cache: dict = {}
    state = {"trained": 0, "steps": 0, "planned": 0.0, "shown": 0.0}

    def show(fraction: float) -> None:
        fraction = min(1.0, fraction)
        if progress is not None and fraction > state["shown"]:
            state["shown"] = fraction
            progress(fraction)

    def compute(flat: np.ndarray) -> np.ndarray:
        idx = _check_indices(spec, flat)
        base = state["planned"]
        share = idx.size / max(idx.size, pixels - reused - state["trained"])
        measure, steps = _compute_pixels(spec, idx, init, lambda f: show(base + (1.0 - base) * share * f), cancel,
                                         dev, kernel, address, cache)
        state["trained"] += int(idx.size)
        state["steps"] += steps
        return measure

    def partial(measure: np.ndarray, computed: np.ndarray, fraction: float) -> None:
        state["planned"] = max(state["planned"], float(fraction))
        show(state["planned"])
        if on_partial is not None:
            on_partial(measure, computed, fraction)

    ref = refine(spec.shape, compute, mode=spec.refine, known_measure=known_measure, known_mask=known_mask,
                 margin=BOUNDARY_MARGIN, seed=spec.seed, on_partial=partial,
                 should_stop=lambda: cancel is not None and cancel.is_set())
    show(1.0)
    stats = refinement_stats(spec.refine, pixels, int(ref.computed.sum()), reused, state["trained"], ref.passes,
                             ref.sample_size, ref.sample_errors, ref.error_rate, ref.error_ci)
    measure = np.asarray(ref.measure, dtype=np.float64)
    return GridResult(spec=spec, measure=measure, converged=measure < 0, x_values=spec.x_values,
                      y_values=spec.y_values, elapsed_s=time.perf_counter() - t0, steps_run=state["steps"],
                      init_hash=init_hash(init) or None, computed=np.asarray(ref.computed, dtype=bool),
                      reused=reused, refinement=stats)


def pixel_loss_curve(spec: GridSpec, x: float, y: float, init=None, device=None, kernel="auto") -> np.ndarray:
    """The ``T`` recorded losses of the single network at log10 coordinates ``(x, y)``, recomputed with the same
    data, weights and minibatch draws as the grid (float64; ``+inf`` after the first non-finite loss).

    At a grid pixel's own coordinates the curve is the grid's own, bit for bit, with the fused kernel; with the
    eager one it gives the grid's verdict and its measure to ~1e-6 (a single network runs in differently shaped
    tensor ops than a tile, and BLAS rounds the last bit per shape).
    """
    dev = resolve_device(device)
    kernel = resolve_kernel(kernel, dev)
    problem = _problem(spec, init, dev)
    lr0, lr1, offset = hyperparameters(spec, np.array([float(x)]), np.array([float(y)]))
    with executor.single_threaded_ops(dev), _blas_guard(kernel):
        losses, _ = _train(kernel)(problem, lr0, lr1, offset, spec.offset_every_step, slots=1)
    return losses[0]
