"""Real-browser fixtures: a Streamlit server on a free loopback port and Debian's Chromium via Playwright.

The tests here check what only a browser shows (clicking the heatmap, live curves, downloads). On a machine
without /usr/bin/chromium or the playwright package they are skipped with a message that says why.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FRACTAL_LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (install Debian's package: apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -r requirements-dev.txt)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``streamlit run app.py <args>`` from the repository root, logging to ``log``; returns once its port answers
    (the port is the value after ``--server.port`` in ``args``)."""
    port = int(args[args.index("--server.port") + 1])
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", *args],
                                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited early:\n{log.read_text()}")
            time.sleep(0.3)
    proc.kill()
    pytest.fail(f"streamlit did not open port {port}:\n{log.read_text()}")


def stop_streamlit(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, _isolated_store):
    """Start `streamlit run app.py` on a free port with the test store; yield its base URL."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    env = dict(os.environ, FRACTAL_LAB_CACHE=str(_isolated_store), PYTHONUNBUFFERED="1")
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    proc = start_streamlit(["--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"], env, log)
    yield f"http://127.0.0.1:{port}"
    stop_streamlit(proc)


@pytest.fixture(scope="session")
def browser():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh browser page (1400x1000) with downloads enabled; `page.app_url` is the server's base URL."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.app_url = app_url  # type: ignore[attr-defined]
    yield pg
    context.close()


def wait_for_app(pg, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has finished its script run (no 'Running...' status widget)."""
    pg.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    # The page skeleton shows before the script runs; wait for real content (every page has a title).
    pg.wait_for_selector("[data-testid='stHeading']", timeout=timeout_ms)
    pg.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms
    )
