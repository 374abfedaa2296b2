"""Where a grid's tiles run: worker threads with single-threaded ops on a CPU, worker processes for big CPU
grids, one stream on a GPU; and the one loop that drives them (progress, cancel, errors) whichever it is.

Why both: the kernel's ops are cache-sized, so splitting one op over cores costs more than it gains; whole tiles
per worker are the parallelism. Worker threads share one interpreter, though, and Python's dispatch under the GIL
is a large part of each small op: two threads reached only ~1.0-1.3 busy cores (``bench/trainability.py``, quiet
2-core machine). Big grids therefore run in processes; small ones stay on threads, because starting a process
(importing torch) costs ~2 s, more than such a grid takes.
"""

from __future__ import annotations

import ast
import contextlib
import math
import os
import signal
import sys
import threading
import time
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
    if device.type != "cpu" or n_workers < 2 or main_would_rerun_this_call():
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


def main_would_rerun_this_call() -> bool:
    """True when a spawned worker would run this very call again: a spawned process re-imports the main
    script, and the call comes from that script's top level outside an ``if __name__ == "__main__":`` block.

    Then the worker would fail while starting (printing its traceback) and the pool would break; threads give
    the same result quietly. Mirrors what ``multiprocessing.spawn`` re-imports: a script path, or a ``-m``
    module other than a package's ``__main__``; nothing for ``-c``, stdin or an interactive session."""
    main = sys.modules.get("__main__")
    if main is None:
        return False
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return False
    if name is None and getattr(main, "__file__", None) is None:
        return False
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            return not _inside_main_guard(frame.f_code.co_filename, frame.f_lineno)
        frame = frame.f_back
    return False


def _inside_main_guard(filename: str, line: int) -> bool:
    """Whether ``line`` of ``filename`` lies in the body of an ``if __name__ == "__main__":`` (False when the
    source cannot be read: then threads, which are always correct)."""
    try:
        with open(filename, "rb") as fh:
            tree = ast.parse(fh.read(), filename)
    except (OSError, SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body:
            if node.body[0].lineno <= line <= (node.body[-1].end_lineno or node.body[-1].lineno):
                return True
    return False


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


_WORKER: dict[str, Any] = {}
PARENT_POLL_S = 0.5


def _die_with_parent(parent: int) -> None:
    """Make this pool worker end when the process that started it dies, even by SIGKILL (a job's worker
    killed mid-grid must not leave its tile processes computing for nobody, adopted by init).

    Linux: the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``). Everywhere: a daemon
    thread polls ``os.getppid()`` (it changes when the parent dies), which also covers a parent that died
    before the prctl took effect."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _process_init(payload, cancel_event, done_counter, parent: int | None = None) -> None:
    if parent is not None:
        _die_with_parent(parent)
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
    ``BrokenProcessPool`` when a worker cannot start, so the caller can fall back to threads; raised before any
    starts when the workers would re-run the calling script (see :func:`main_would_rerun_this_call`). The
    workers die with this process (see :func:`_die_with_parent`)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    if main_would_rerun_this_call():
        raise BrokenProcessPool("the main script calls this outside an if __name__ == '__main__': block")
    ctx = mp.get_context("spawn")  # fork after torch has started threads is unsafe
    stop = ctx.Event()
    done = ctx.Value("q", 0)
    with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_process_init,
                             initargs=(payload, stop, done, os.getpid())) as pool:
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
