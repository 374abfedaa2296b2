"""Regenerate the screenshots in docs/: start the app on a loopback port, open each page in headless Chromium,
let it finish drawing, and save a PNG per page.

    .venv/bin/python docs/make_screenshots.py            # all pages
    .venv/bin/python docs/make_screenshots.py --only home trainability

Uses its own throw-away store (a temp folder) so the pictures do not depend on what you have cached. Some pages
are driven a little before the picture is taken (e.g. the explorer computes its first map), see ACTIONS.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHROMIUM = os.environ.get("FRACTAL_LAB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _wait_idle(pg, timeout_ms=120_000):
    pg.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    # The page skeleton shows before the script runs; wait for real content (every page has a title).
    pg.wait_for_selector("[data-testid='stHeading']", timeout=timeout_ms)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def _trainability(pg):
    # Open a shareable link to the tanh preset at 64x64: the explorer computes a linked view by itself.
    sys.path.insert(0, str(ROOT))
    from urllib.parse import urlencode

    from engine.trainability import preset
    from ui.trainability.link import grid_view_query

    query = grid_view_query(preset("tanh", resolution=(64, 64)).to_dict(), preset="tanh")
    pg.goto(pg.url.split("?")[0] + "?" + urlencode(query))
    _wait_idle(pg)
    pg.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=300_000)
    # wait until the full-resolution job (after the coarse preview) is done: no panel says "running" any more
    pg.wait_for_function("() => !document.body.innerText.includes('Computing')", timeout=300_000)
    pg.wait_for_function("() => !/(running|queued) ·/.test(document.body.innerText)", polling=1000,
                         timeout=900_000)
    time.sleep(3)


def _runs(pg):
    # rows draw their thumbnails and links after the list: wait until no element is still a placeholder
    pg.wait_for_function("() => !document.querySelector('[data-stale=\"true\"], .stSkeleton')", timeout=60_000)
    time.sleep(2)


def _fractalnet(pg):
    time.sleep(2)


def _kronecker(pg):
    pg.wait_for_selector(".js-plotly-plot", timeout=60_000)
    time.sleep(2)


# name -> (url path from ui/nav.PAGES, file name, action after load)
sys.path.insert(0, str(ROOT))
from ui import nav  # noqa: E402

PAGES = {
    "home": ("/", "home.png", None),
    "trainability": ("/" + nav.EXPLORER.url_path, "trainability_explorer.png", _trainability),
    "fractalnet": ("/" + nav.FRACTALNET_LAB.url_path, "fractalnet_lab.png", _fractalnet),
    "kronecker": ("/" + nav.KRONECKER_LAB.url_path, "kronecker_lab.png", _kronecker),
    "runs": ("/" + nav.RUNS.url_path, "runs.png", _runs),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(PAGES), help="pages to capture (default: all)")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    store = tempfile.mkdtemp(prefix="fractal-lab-shots-")
    env = dict(os.environ, FRACTAL_LAB_CACHE=store)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
         str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for name in args.only or list(PAGES):
                path, fname, action = PAGES[name]
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                pg = ctx.new_page()
                pg.goto(f"http://127.0.0.1:{port}{path}")
                _wait_idle(pg)
                if action:
                    try:
                        action(pg)
                        _wait_idle(pg)
                    except Exception as exc:  # still take the picture: it shows what went wrong
                        print(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                pg.screenshot(path=str(DOCS / fname), full_page=True)
                print(f"wrote docs/{fname}")
                ctx.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
