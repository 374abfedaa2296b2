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
