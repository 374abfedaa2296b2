"""Where a grid's tiles run: worker threads with single-threaded ops on a CPU, worker processes for big CPU
grids, one stream on a GPU; and the one loop that drives them (progress, cancel, errors) whichever it is.

Why both: the kernel's ops are cache-sized, so splitting one op over cores costs more than it gains; whole tiles
per worker are the parallelism. Worker threads share one interpreter, though, and Python's dispatch under the GIL
is a large part of each small op: two threads reached only ~1.0-1.3 busy cores (``bench/trainability.py``, quiet
2-core machine). Big grids therefore run in processes; small ones stay on threads, because starting a process
(importing torch) costs ~2 s, more than such a grid takes.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

import torch

from engine.errors import Cancelled
from engine.settings import env_flag, env_int
from engine.trainability.spec import GridSpec

PROCESS_MIN_NETWORK_STEPS = 1_000_000

_threads_lock = threading.Lock()
_threads_depth = 0
_threads_saved = 1


def workers(device: torch.device) -> int:
    """CPU workers (one tile each, single-threaded ops): ``$FRACTAL_LAB_THREADS``, else torch's thread count."""
    if device.type != "cpu":
        return 1
    with _threads_lock:  # inside another grid's single-threaded section, count the threads it put aside
        n = _threads_saved if _threads_depth else torch.get_num_threads()
    return env_int("FRACTAL_LAB_THREADS", max(1, n), 1, 4096)


@contextlib.contextmanager
def single_threaded_ops(device: torch.device):
    """Run torch's CPU ops single-threaded while the kernel works (restored afterwards, re-entrant): a single
    pixel's curve was measured 40x slower with 2 intra-op threads on a busy 2-core machine."""
    global _threads_depth, _threads_saved
    if device.type != "cpu":
        yield
        return
    with _threads_lock:
        if _threads_depth == 0:
            _threads_saved = torch.get_num_threads()
            if _threads_saved != 1:
                torch.set_num_threads(1)
        _threads_depth += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_depth -= 1
            if _threads_depth == 0 and _threads_saved != 1:
                torch.set_num_threads(_threads_saved)


def default_tile_size(spec: GridSpec, device: torch.device | None = None, n_workers: int = 1) -> int:
    """Tile side: big enough to keep the kernel's slots full, small enough that every worker gets tiles and a
    tile's loss history (pixels x steps, float64) stays around 32 MB."""
    cap = 128 if device is not None and device.type == "cuda" else 32
    side = max(1, min(cap, int(math.sqrt(4_000_000 / spec.steps))))
    while side > 4 and math.ceil(spec.n_x / side) * math.ceil(spec.n_y / side) < 2 * n_workers:
        side //= 2
    return side


def use_processes(network_steps: int, device: torch.device, n_workers: int) -> bool:
    """Processes for CPU grids of at least PROCESS_MIN_NETWORK_STEPS; ``$FRACTAL_LAB_GRID_PROCESSES=0`` turns
    them off (``=1`` forces them, e.g. for tests)."""
    if device.type != "cpu" or n_workers < 2:
        return False
    if os.environ.get("FRACTAL_LAB_GRID_PROCESSES", "").strip():
        return env_flag("FRACTAL_LAB_GRID_PROCESSES", False)
    return network_steps >= PROCESS_MIN_NETWORK_STEPS


# A tile's work: work(tile, on_progress(network_steps_done), should_stop()) -> result (None if it stopped).
Work = Callable[[Any, Callable[[int], None], Callable[[], bool]], Any]


def run_in_threads(tiles: Sequence[Any], work: Work, n_workers: int, total: int, progress, cancel,
                   device: torch.device) -> list:
    """Run ``work`` on every tile in ``n_workers`` threads; see :func:`drive_tiles` for progress and cancel."""
    lock = threading.Lock()
    done = [0]
    stop = threading.Event()

    def on_progress(n: int) -> None:
        with lock:
            done[0] += n

    def should_stop() -> bool:
        return stop.is_set() or (cancel is not None and cancel.is_set())

    def job(tile):
        if should_stop():
            return None
        return work(tile, on_progress, should_stop)

    pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="trainability")
    with single_threaded_ops(device), pool:
        futures = [pool.submit(job, t) for t in tiles]
        return drive_tiles(futures, stop, lambda: done[0] / total, progress, cancel)


_WORKER: dict[str, Any] = {}


def _process_init(payload, cancel_event, done_counter) -> None:
    torch.set_num_threads(1)  # one interpreter per core; see single_threaded_ops
    _WORKER.update(payload=payload, cancel=cancel_event, done=done_counter)


def _process_task(work, tile):
    cancel, done = _WORKER["cancel"], _WORKER["done"]
    if cancel.is_set():
        return None

    def on_progress(n: int) -> None:
        with done.get_lock():
            done.value += int(n)

    return work(_WORKER["payload"], tile, on_progress, cancel.is_set)


def run_in_processes(tiles: Sequence[Any], work, payload, n_workers: int, total: int, progress, cancel) -> list:
    """Run ``work(payload, tile, on_progress, should_stop)`` on every tile in ``n_workers`` spawned processes
    (``work`` must be a module-level function; ``payload`` is sent once per process). Raises
    ``BrokenProcessPool`` when a worker cannot start (e.g. a script without an ``if __name__ == "__main__":``
    guard), so the caller can fall back to threads."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")  # fork after torch has started threads is unsafe
    stop = ctx.Event()
    done = ctx.Value("q", 0)
    with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_process_init,
                             initargs=(payload, stop, done)) as pool:
        futures = [pool.submit(_process_task, work, tile) for tile in tiles]
        return drive_tiles(futures, stop, lambda: done.value / total, progress, cancel)


def drive_tiles(futures, stop, fraction: Callable[[], float], progress, cancel) -> list:
    """Wait for the tile futures, reporting ``progress(fraction())``. On cancel, an error, or Ctrl-C: set
    ``stop`` (the workers poll it between steps), drop the tiles not started, and raise."""
    pending = set(futures)
    last = -1.0
    try:
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            for f in finished:
                if f.exception() is not None:
                    raise f.exception()
            if cancel is not None and cancel.is_set():
                raise Cancelled("trainability grid cancelled")
            if progress is not None:
                frac = min(1.0, fraction())
                if frac != last:
                    progress(frac)
                    last = frac
    except BaseException:
        stop.set()
        for f in pending:
            f.cancel()
        raise
    results = [f.result() for f in futures]
    if any(r is None for r in results):
        raise Cancelled("trainability grid cancelled")
    return results
