"""The server as the README starts it (only .streamlit/config.toml, no command-line overrides) must sit idle.

With the file watcher on a tree that holds .venv, Streamlit used ~100% of a core with one idle tab open; that is
half of a 2-core machine taken from the grid jobs. Measured here as the server process's own CPU time.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.browser.conftest import _free_port, _skip_reason, start_streamlit, stop_streamlit, wait_for_app

IDLE_S = 30
MAX_CORE_FRACTION = 0.05  # "a few percent of a core"


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses with a socket in LISTEN state on ``port`` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":
                found.add(addr)
    return found


@pytest.fixture
def readme_server(tmp_path):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    env = dict(os.environ, FRACTAL_LAB_CACHE=str(tmp_path / "store"), PYTHONUNBUFFERED="1")
    log = tmp_path / "server.log"
    # Only the port on the command line: everything else comes from .streamlit/config.toml, as for a user.
    proc = start_streamlit(["--server.port", str(port)], env, log)
    yield proc, port, log
    stop_streamlit(proc)


def test_server_idles_with_a_tab_open_and_listens_on_loopback_only(readme_server, browser):
    proc, port, log = readme_server
    # Loopback only: every listening socket on the port is 127.0.0.1 (0100007F) or ::1, never 0.0.0.0 / ::.
    addrs = _listening_addresses(port)
    assert addrs, "no listening socket found"
    assert addrs <= {"0100007F", "00000000000000000000000001000000"}, addrs

    context = browser.new_context()  # the session's Chromium (one Playwright per process)
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        wait_for_app(page)
        time.sleep(2)  # let the first script run settle
        before = _cpu_seconds(proc.pid)
        t0 = time.monotonic()
        time.sleep(IDLE_S)
        used = _cpu_seconds(proc.pid) - before
        elapsed = time.monotonic() - t0
    finally:
        context.close()
    fraction = used / elapsed
    print(f"idle server: {used:.2f} CPU-s over {elapsed:.1f} s = {fraction:.2%} of a core")
    text = log.read_text()
    assert fraction < MAX_CORE_FRACTION, f"idle server used {fraction:.1%} of a core over {elapsed:.0f} s\n{text[-2000:]}"
    assert "Inotify" not in text
    assert "gatherUsageStats" not in text and "usage statistics" not in text.lower()


LIVE = "[class*='st-key-tx_live_map'] .js-plotly-plot"
BUSY_S = 15
MAX_BUSY_FRACTION = 0.10  # measured 2.7% of a core; 20-35% while Streamlit ran gc.collect() after each rerun


def test_server_stays_light_while_a_job_runs_and_its_live_map_redraws(readme_server, browser, monkeypatch):
    """A live map and progress panel rerun their fragments several times a second: the server must not take
    from the job it shows (Streamlit's default full garbage collection after each rerun took a third of a
    core; .streamlit/config.toml turns it off)."""
    import dataclasses
    from urllib.parse import urlencode

    import runs
    from engine import trainability as tr
    from ui.trainability.link import EXPLORER_URL_PATH, grid_view_query

    proc, port, log = readme_server
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(log.parent / "store"))  # the server's store, to cancel the job
    spec = dataclasses.replace(tr.PRESETS["tanh"].spec, resolution=(128, 128), steps=2000, seed=43)
    context = browser.new_context()
    try:
        page = context.new_page()
        query = grid_view_query(spec.to_dict(), preset="tanh")
        page.goto(f"http://127.0.0.1:{port}/{EXPLORER_URL_PATH}?{urlencode(query, safe=',;')}")
        page.wait_for_selector(LIVE, timeout=120_000)
        before = _cpu_seconds(proc.pid)
        t0 = time.monotonic()
        page.wait_for_timeout(BUSY_S * 1000)
        used = _cpu_seconds(proc.pid) - before
        elapsed = time.monotonic() - t0
        assert page.locator(LIVE).count(), "the live map was still drawn at the end (the job had not finished)"
    finally:
        context.close()
        for job in runs.list_jobs():
            runs.cancel(job.id)
    fraction = used / elapsed
    print(f"server during a live job: {used:.2f} CPU-s over {elapsed:.1f} s = {fraction:.2%} of a core")
    assert fraction < MAX_BUSY_FRACTION, f"the server used {fraction:.1%} of a core while the job ran"
