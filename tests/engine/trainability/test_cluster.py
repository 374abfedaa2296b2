"""Grids and zoom videos on a real Dask cluster (issue 16): a scheduler and two workers started as processes on
127.0.0.1, exactly as the README's "When one machine is not enough" starts them (``dask scheduler``, ``dask
worker ... --nworkers 1 --nthreads 1`` with PYTHONPATH at the repository root).

The cluster's pixels equal the local run's bit for bit (the fused kernel computes a pixel the same way in any
tile); a worker killed mid-grid only costs its tiles; Cancel stops the running tiles and leaves no task behind;
a bad or silent address is a clear error naming the setting.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed", reason="distributed is not installed: the Dask cluster tests need it "
                                          "(pip install -r requirements.txt)")

from engine.errors import Cancelled  # noqa: E402
from engine.trainability import cluster, grid  # noqa: E402
from engine.trainability.presets import preset  # noqa: E402
from tests.engine.trainability import cluster_tasks  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """A ``dask`` command in its own session (so teardown can end it and the worker it spawns, by group)."""
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_workers(address: str, n: int, procs=()) -> cluster.ClusterInfo:
    t_end = time.monotonic() + START_TIMEOUT_S
    while True:
        for p in procs:
            assert p.poll() is None, f"a dask process exited with {p.returncode} (see its log)"
        try:
            info = cluster.cluster_info(address, timeout_s=2)
            if info.workers == n:
                return info
        except ValueError:
            if time.monotonic() > t_end:
                raise
        if time.monotonic() > t_end:
            raise AssertionError(f"{n} workers did not join {address} within {START_TIMEOUT_S:g} s")
        time.sleep(0.3)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:  # the group: the worker process a nanny spawned, if it outlived its nanny
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait(timeout=10)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """``{"address": tcp://127.0.0.1:PORT, "dashboard": its link}``: a scheduler with two single-threaded
    workers, torn down after the module (by process group: the nannies and the workers they spawned)."""
    logs = tmp_path_factory.mktemp("dask-logs")
    port, dashboard = _free_port(), _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep), "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}  # as the README starts workers
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--dashboard-address", f"127.0.0.1:{dashboard}"], logs / "scheduler.log", env)]
    try:
        for i in range(2):
            procs.append(_start(["distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
                                 "--no-dashboard", "--name", f"w{i}", "--local-directory", str(logs)],
                                logs / f"worker{i}.log", env))
        _wait_workers(address, 2, procs)
        yield {"address": address, "dashboard": f"http://127.0.0.1:{dashboard}/status"}
    finally:
        cluster.close_clients()
        _stop(procs)


@pytest.fixture
def dask_address(dask_cluster):
    return dask_cluster["address"]


def _spec(**kw):
    return preset("tanh", resolution=(64, 64), steps=100, width=8, **kw)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def _assemble(spec, results) -> np.ndarray:
    out = np.full(spec.shape, np.nan)
    for r in results:
        (r0, r1), (c0, c1) = r.tile.rows, r.tile.cols
        out[r0:r1, c0:c1] = r.measure
    return out


def _scheduler_tasks(address: str) -> list:
    client = cluster._client(address)
    return client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks])


def _wait_until(condition, timeout_s: float = 30.0, what: str = "condition") -> None:
    t_end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > t_end:
            raise AssertionError(f"{what}: not reached within {timeout_s:g} s")
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------ the setting


def test_scheduler_address_forms(monkeypatch):
    monkeypatch.delenv(cluster.ENV, raising=False)
    assert cluster.scheduler_address() is None
    assert cluster.scheduler_address("") is None and cluster.scheduler_address(" Local ") is None
    assert cluster.scheduler_address("127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert cluster.scheduler_address("tcp://gpu-node-3.lab:8786") == "tcp://gpu-node-3.lab:8786"
    assert cluster.scheduler_address("tcp://[::1]:8786") == "tcp://[::1]:8786"
    monkeypatch.setenv(cluster.ENV, "tcp://10.0.0.5:8786")
    assert cluster.scheduler_address() == "tcp://10.0.0.5:8786"
    assert cluster.scheduler_address("local") is None  # the explicit setting wins over the environment
    for bad in ("http://10.0.0.5:8786", "10.0.0.5", "tcp://10.0.0.5:0", "tcp://h:99999", "tcp://a b:1", "h:port"):
        with pytest.raises(ValueError, match=f"^{cluster.ENV} / --scheduler: must be 'local' or a Dask scheduler"):
            cluster.scheduler_address(bad)
    monkeypatch.setenv(cluster.ENV, "my-cluster")
    with pytest.raises(ValueError, match=f"{cluster.ENV}.*tcp://HOST:PORT.*got 'my-cluster'"):
        cluster.scheduler_address()


def test_a_silent_address_is_a_clear_error():
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(ValueError, match=f"^{cluster.ENV} / --scheduler: no Dask scheduler answers at {address}"):
        cluster.cluster_info(address, timeout_s=1)
    with pytest.raises(ValueError, match="no Dask scheduler answers"):
        cluster.run_on_cluster(address, [1], cluster_tasks.fail_on, 0, 1)


def test_no_workers_and_a_lost_scheduler_are_clear_errors(tmp_path):
    """A scheduler of its own (the module's cluster must survive): first without workers, then killed mid-grid."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--dashboard-address", f"127.0.0.1:{_free_port()}"], tmp_path / "scheduler.log", env)]
    try:
        _wait_workers(address, 0, procs)
        with pytest.raises(ValueError, match=f"^{cluster.ENV} / --scheduler: the Dask scheduler at {address} has "
                                             "no workers; start some"):
            cluster.run_on_cluster(address, [1], cluster_tasks.fail_on, 0, 1)
        procs.append(_start(["distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
                             "--local-directory", str(tmp_path)], tmp_path / "worker.log", env))
        _wait_workers(address, 1, procs)

        def kill_scheduler():
            _wait_until(lambda: list(tmp_path.glob("started-*")), what="an item running")
            os.killpg(procs[0].pid, signal.SIGKILL)

        threading.Thread(target=kill_scheduler, daemon=True).start()
        with pytest.raises(ConnectionError, match=f"^{cluster.ENV} / --scheduler: the Dask scheduler at {address} "
                                                  "dropped this grid's tasks"):
            cluster.run_on_cluster(address, list(range(3)), cluster_tasks.wait_for_stop, str(tmp_path), 3)
    finally:
        _stop(procs)


def test_distributed_is_not_imported_without_a_cluster():
    code = ("import sys; import engine.trainability.cluster as c, engine.trainability.grid; "
            "assert c.scheduler_address('local') is None; print('distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------ the cluster


def test_cluster_info(dask_cluster):
    info = cluster.cluster_info(dask_cluster["address"])
    assert (info.address, info.workers, info.cores, info.gpus) == (dask_cluster["address"], 2, 2, 0)
    assert info.dashboard_link == dask_cluster["dashboard"]


def test_tiles_on_the_cluster_equal_the_local_grid_bit_for_bit(dask_address):
    spec = _spec()
    local = grid.run_grid(spec, kernel="fused")
    tiles = spec.tiles(16)
    fractions = []
    results = cluster.run_on_cluster(dask_address, tiles, grid._tile_in_process, (None, "fused"),
                                     spec.n_x * spec.n_y * spec.steps, fractions.append, threading.Event())
    assert [r.tile for r in results] == tiles  # in the items' order
    assert _same_bits(_assemble(spec, results), local.measure)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 2
    assert _scheduler_tasks(dask_address) == []  # the payload and the tiles are released afterwards


def test_an_item_error_reaches_the_caller(dask_address):
    with pytest.raises(ArithmeticError, match="item 3 refuses"):
        cluster.run_on_cluster(dask_address, list(range(6)), cluster_tasks.fail_on, 3, 6)
    assert cluster.run_on_cluster(dask_address, list(range(6)), cluster_tasks.fail_on, -1, 6) == [
        0, 1, 4, 9, 16, 25]


def test_grid_through_run_grid_and_run_pixels_equals_local(dask_address):
    spec = _spec()
    local = grid.run_grid(spec, kernel="fused")
    fractions = []
    remote = grid.run_grid(spec, kernel="fused", scheduler=dask_address, progress=fractions.append)
    assert _same_bits(remote.measure, local.measure)
    assert remote.steps_run == local.steps_run
    assert fractions[-1] == 1.0
    some = np.random.default_rng(0).choice(spec.n_x * spec.n_y, size=300, replace=False)
    measure, _ = grid.run_pixels(spec, some, kernel="fused", scheduler=dask_address)
    assert _same_bits(measure, local.measure.ravel()[some])


def test_a_job_on_the_cluster_stores_the_local_pixels_and_cancels(dask_address):
    import runs
    from engine.trainability.results import load

    spec = _spec(seed=2)
    job = runs.submit("grid", spec, options={"scheduler": dask_address})
    assert job == runs.submit("grid", spec)  # where it runs is not part of the key
    assert runs.wait_for(job, timeout=120).state == "done"
    with runs.reading(job) as folder:
        stored = load(folder)
    assert stored.stats["scheduler"] == dask_address  # it ran there ...
    assert _same_bits(stored.measure, grid.run_grid(spec, kernel="fused").measure)  # ... and gave these pixels

    big = preset("tanh", resolution=(64, 64), steps=500, width=16, seed=3)  # ~2e6 network-steps: still running
    job = runs.submit("grid", big, options={"scheduler": dask_address})
    _wait_until(lambda: any(k.startswith("_cluster_task") for k in _scheduler_tasks(dask_address)),
                timeout_s=120, what="the job's tiles on the scheduler")
    runs.cancel(job)
    assert runs.wait_for(job, timeout=60).state == "cancelled"
    _wait_until(lambda: _scheduler_tasks(dask_address) == [], what="no task of the cancelled job left")


def test_zoom_video_on_the_cluster_equals_local(dask_address, tmp_path):
    from engine.trainability.video import VideoSpec, run_to_dir

    g = _spec()
    spec = VideoSpec(grid=g, full_x_range=(0.0, 2.25), full_y_range=(-0.5, 1.75), resolution=(16, 16), upscale=2,
                     frames_per_level=3, fps=10, formats=("gif",))
    assert len(spec.keyframes()) == 3
    (tmp_path / "local").mkdir()
    (tmp_path / "remote").mkdir()
    run_to_dir(spec, tmp_path / "local")
    run_to_dir(spec, tmp_path / "remote", scheduler=dask_address)
    for name in ("video.gif", "preview.png", "views.json"):
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_cancel_stops_running_items_and_leaves_no_task(dask_address, tmp_path):
    cancel = threading.Event()
    outcome = {}

    def call():
        try:
            cluster.run_on_cluster(dask_address, list(range(6)), cluster_tasks.wait_for_stop, str(tmp_path), 6,
                                   None, cancel)
            outcome["returned"] = True
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["raised"] = exc

    t = threading.Thread(target=call)
    t.start()
    _wait_until(lambda: len(list(tmp_path.glob("started-*"))) == 2, what="both workers running an item")
    cancel.set()
    t.join(timeout=60)
    assert not t.is_alive()
    assert isinstance(outcome.get("raised"), Cancelled), outcome
    started = sorted(p.name.split("-")[1] for p in tmp_path.glob("started-*"))
    _wait_until(lambda: sorted(p.name.split("-")[1] for p in tmp_path.glob("stopped-*")) == started,
                what="the running items told to stop")
    assert len(started) == 2  # the items not yet started never ran
    _wait_until(lambda: _scheduler_tasks(dask_address) == [], what="no task left on the scheduler")


def _compute_on_script():
    import streamlit as st

    from ui.trainability.cluster import compute_on

    st.session_state["where"] = compute_on({})


def test_the_compute_on_widget_shows_the_cluster(dask_cluster, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(cluster.ENV, dask_cluster["address"].removeprefix("tcp://"))
    at = AppTest.from_function(_compute_on_script, default_timeout=30).run()
    assert not at.exception and not at.error
    assert at.session_state["where"] == dask_cluster["address"]
    assert any("2 workers · 2 cores" in c.value for c in at.caption)
    assert dask_cluster["dashboard"] in str(at.get("link_button")[0].proto)


def test_a_worker_killed_mid_grid_costs_only_its_tiles(dask_address):
    spec = _spec(seed=1)
    local = grid.run_grid(spec, kernel="fused")
    client = cluster._client(dask_address)
    pids = client.run(os.getpid)  # {worker address: pid of the worker process}
    victim = sorted(pids.values())[0]
    killed = []

    def progress(fraction):
        if fraction > 0 and not killed:
            assert fraction < 1.0
            os.kill(victim, signal.SIGKILL)
            killed.append(fraction)

    results = cluster.run_on_cluster(dask_address, spec.tiles(8), grid._tile_in_process, (None, "fused"),
                                     spec.n_x * spec.n_y * spec.steps, progress, None)
    assert killed, "the worker was not killed mid-grid"
    assert _same_bits(_assemble(spec, results), local.measure)
    _wait_until(lambda: victim not in client.run(os.getpid).values(), what="the killed worker gone")
    _wait_workers(dask_address, 2)  # its nanny started a fresh one: the cluster is whole again
