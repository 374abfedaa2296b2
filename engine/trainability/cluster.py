"""Grids on a Dask cluster: the same tiles as :mod:`.executor`, as Dask tasks on ``dask worker`` processes.

Why Dask distributed: a 4096²×500 frame is 8.4e9 network-steps (about a day on 2 cores), its tiles are
independent, and Dask already does what a home-made pool would have to re-invent: the same code on one machine
or many, data sent once per worker, futures streamed back as they finish, lost workers' tasks re-run, GPU
workers by resource, and a live dashboard. ``distributed`` is imported only when an address is given, so the
app without a cluster never loads it.

Workers unpickle the work by reference (``engine.trainability.grid._tile_in_process``), so they must import
this repository: start them from its root with ``PYTHONPATH=.`` and its venv (README, "When one machine is not
enough").
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import Cancelled

ENV = "FRACTAL_LAB_DASK_SCHEDULER"
SETTING = f"{ENV} / --scheduler"
FORM = "'local' or a Dask scheduler address tcp://HOST:PORT (or HOST:PORT)"
CONNECT_TIMEOUT_S = 5.0
STOP_POLL_S = 0.5  # how often a running tile asks the scheduler whether its grid was cancelled
POLL_S = 0.1  # how often the client looks for finished tiles and the cancel flag
RETRIES = 1  # a tile that raised is tried once more elsewhere (a dead worker's tiles are re-run regardless)

_ADDRESS = re.compile(r"^(?:tcp://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")


def scheduler_address(value: str | None = None) -> str | None:
    """The scheduler to compute on: ``value`` if given, else ``$FRACTAL_LAB_DASK_SCHEDULER``, as
    ``tcp://host:port``; None (``""``, ``"local"`` or unset) means this machine's threads/processes.
    Anything else is a ``ValueError`` naming the setting and the allowed form."""
    text = os.environ.get(ENV, "") if value is None else value
    if not isinstance(text, str):
        raise ValueError(f"{SETTING}: must be {FORM}, got {text!r}")
    text = text.strip()
    if text.lower() in ("", "local"):
        return None
    m = _ADDRESS.match(text)
    if m is None or not 1 <= int(m["port"]) <= 65535:
        raise ValueError(f"{SETTING}: must be {FORM}, got {text[:200]!r}")
    return f"tcp://{m['host']}:{int(m['port'])}"


@dataclass(frozen=True)
class ClusterInfo:
    """What a scheduler reports: its workers, their threads (cores) and GPUs (``--resources GPU=n``)."""

    address: str
    workers: int
    cores: int
    gpus: int
    dashboard_link: str | None


# One Client per scheduler address and process: connecting costs a round trip and a handshake, and a job's
# process computes many passes (refinement, video keyframes) against the same scheduler.
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _client(address: str, timeout_s: float = CONNECT_TIMEOUT_S):
    """The cached ``distributed.Client`` of ``address`` (a new one if none, or the last one was closed);
    ``ValueError`` naming the setting when no scheduler answers within ``timeout_s``."""
    from distributed import Client

    with _clients_lock:
        client = _clients.get(address)
        if client is not None and client.status == "running":
            return client
        _clients.pop(address, None)
        try:
            client = Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"{SETTING}: no Dask scheduler answers at {address}: {exc}") from None
        _clients[address] = client
        return client


def close_clients() -> None:
    """Close every cached client (tests and benches that stop their scheduler)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for c in clients:
        try:
            c.close(timeout=2)
        except Exception:  # noqa: BLE001 - the scheduler may already be gone
            pass


def _dashboard_link(client) -> str | None:
    try:
        return client.dashboard_link
    except (KeyError, AttributeError, TypeError):  # a scheduler started with --no-dashboard
        return None


def cluster_info(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> ClusterInfo:
    """Workers, cores and GPUs of the scheduler at ``address`` (``scheduler_address`` form); ``ValueError``
    ("... no Dask scheduler answers at ...") when none does within ``timeout_s``."""
    address = scheduler_address(address)
    if address is None:
        raise ValueError(f"{SETTING}: cluster_info needs a scheduler address, got 'local'")
    client = _client(address, timeout_s)
    try:
        info = client.scheduler_info(n_workers=-1)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"{SETTING}: no Dask scheduler answers at {address}: {exc}") from None
    workers = info.get("workers", {}).values()
    return ClusterInfo(
        address=address,
        workers=len(workers),
        cores=sum(int(w.get("nthreads", 0)) for w in workers),
        gpus=sum(int((w.get("resources") or {}).get("GPU", 0)) for w in workers),
        dashboard_link=_dashboard_link(client),
    )


# ------------------------------------------------------------------------------------------------ on a worker

_local = threading.local()
_worker_setup_lock = threading.Lock()
_worker_setup_done = False


def worker_device() -> str:
    """The device a tile should use where it runs: ``"cuda"`` on a Dask worker that declares a ``GPU``
    resource and sees CUDA, else ``"cpu"`` (also outside a Dask task). Work functions call this to pick it."""
    return getattr(_local, "device", "cpu")


def _detect_device() -> str:
    from distributed import get_worker

    try:
        gpus = get_worker().state.total_resources.get("GPU", 0)
    except (ValueError, AttributeError):
        gpus = 0
    if gpus:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"


def _setup_worker() -> None:
    """Once per worker process: torch's CPU ops single-threaded, one tile per Dask thread (as
    :func:`executor._process_init` does for a process pool)."""
    global _worker_setup_done
    with _worker_setup_lock:
        if not _worker_setup_done:
            import torch

            torch.set_num_threads(1)
            _worker_setup_done = True


def _cluster_task(work, payload, item, stop_name: str):
    """One item on a worker: ``work(payload, item, on_progress, should_stop)``; returns ``(result, work
    done)``. ``should_stop`` asks the grid's cancel Event on the scheduler at most every STOP_POLL_S."""
    from distributed import Event

    _setup_worker()
    event = Event(stop_name)
    done = [0]
    last = [time.monotonic(), False]

    def on_progress(n: int) -> None:
        done[0] += int(n)

    def should_stop() -> bool:
        now = time.monotonic()
        if not last[1] and now - last[0] >= STOP_POLL_S:
            last[0] = now
            try:
                last[1] = event.is_set()
            except Exception:  # noqa: BLE001 - the scheduler is gone: nobody will read this tile
                last[1] = True
        return last[1]

    _local.device = _detect_device()
    try:
        if event.is_set():
            return None, 0
        return work(payload, item, on_progress, should_stop), done[0]
    finally:
        _local.device = "cpu"


# ------------------------------------------------------------------------------------------------ the client


def run_on_cluster(address: str, items: Sequence[Any], work, payload, total: int, progress=None,
                   cancel=None) -> list:
    """Run ``work(payload, item, on_progress, should_stop)`` for every item as a task on the scheduler at
    ``address``; the same contract as :func:`executor.run_in_processes` (``work`` module-level, importable on
    the workers; results in the items' order).

    ``payload`` is scattered once to every worker (``broadcast=True``) and handed to each task as a future;
    items are tasks (``pure=False``), sized by the caller (enough of them to keep every worker busy). A worker
    that dies mid-grid costs only its items: Dask re-runs them elsewhere. ``progress(fraction)`` counts the
    finished items' work (``total`` units). When ``cancel.is_set()``: the running items are told to stop, the
    futures are cancelled, and :class:`Cancelled` is raised. On a cluster whose every worker has a ``GPU``
    resource each item takes one (``resources={"GPU": 1}``); the item runs on CUDA (see :func:`worker_device`).
    """
    from distributed import Event, as_completed

    address = scheduler_address(address)
    if address is None:
        raise ValueError(f"{SETTING}: run_on_cluster needs a scheduler address, got 'local'")
    client = _client(address)
    items = list(items)
    if not items:
        return []
    workers = client.scheduler_info(n_workers=-1).get("workers", {}).values()
    if not workers:  # tasks (and the payload's scatter) would wait for one, with nothing on screen to say why
        raise ValueError(f"{SETTING}: the Dask scheduler at {address} has no workers; start some with "
                         f"`dask worker {address}` (README: When one machine is not enough)")
    all_gpu = all((w.get("resources") or {}).get("GPU", 0) for w in workers)
    resources = {"GPU": 1} if all_gpu else None
    stop_name = f"fractal-lab-stop-{uuid.uuid4().hex}"
    stop = Event(stop_name, client=client)
    # A one-element list: scatter would split a tuple payload into one future per element.
    [payload_future] = client.scatter([payload], broadcast=True, hash=False)
    futures = [client.submit(_cluster_task, work, payload_future, item, stop_name, pure=False, retries=RETRIES,
                             resources=resources) for item in items]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(items)
    done = 0
    last = -1.0
    try:
        # Results are fetched in the background as items finish; the loop below only collects them.
        finished = as_completed(futures, loop=client.loop, with_results=True)
        while not finished.is_empty():
            for f, value in finished.next_batch(block=False):
                if f.status == "cancelled":  # not by us: the client lost its scheduler, or someone cancelled it
                    raise ConnectionError(f"{SETTING}: the Dask scheduler at {address} dropped this grid's tasks "
                                          f"({' '.join(str(value).split())[:300]})")
                if f.status != "finished":
                    f.result()  # raises the item's exception here
                result, work_done = value
                results[index[f.key]] = result
                done += work_done
            if cancel is not None and cancel.is_set():
                raise Cancelled("trainability grid cancelled")
            if progress is not None and total:
                frac = min(1.0, done / total)
                if frac != last:
                    progress(frac)
                    last = frac
            if not finished.has_ready():
                time.sleep(POLL_S)
    except BaseException:
        try:
            stop.set()  # left set: tiles still running see it and stop
            client.cancel([*futures, payload_future], force=True)
        except Exception:  # noqa: BLE001 - the scheduler may be what failed; then the tasks went with it
            pass
        raise
    client.cancel([payload_future], force=True)
    try:
        stop.clear()  # drops the Event from the scheduler
    except Exception:  # noqa: BLE001
        pass
    if any(r is None for r in results):
        raise Cancelled("trainability grid cancelled")
    return results
