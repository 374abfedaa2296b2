"""Real-browser check of issue 15's progressive map: a view is one job, and while it runs the map is its live
snapshot, a coarse mosaic within seconds that sharpens pass by pass (more pixels trained, more distinct pixel
values) until the stored map replaces it. Only a browser shows the fragment redrawing on its own timer.
"""

from __future__ import annotations

import dataclasses
import re
import time

import pytest

import runs
from cache import default_store
from engine import trainability as tr
from tests.browser.conftest import wait_for_app
from tests.browser.test_trainability_explorer import MAP, _open, _shot

LIVE = "[class*='st-key-tx_live_map'] .js-plotly-plot"
SHARE = re.compile(r"Computing: (\d+)% of the pixels trained so far")
DISTINCT_JS = """(sel) => {
  const g = document.querySelector(sel);
  if (!g || !g._fullData || !g._fullData.length) return null;
  const z = g._fullData[0].z;
  if (!z || !z.length) return null;
  const seen = new Set();
  for (const row of z) { if (typeof row === 'number') seen.add(row); else for (const v of row) seen.add(v); }
  return seen.size;
}"""

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("stop_leftover_jobs")]


def _jobs() -> list[str]:
    """The grid jobs of this test's experiment (the session's store also holds other tests' jobs)."""
    return [s.id for s in runs.list_jobs() if s.kind == "grid" and (s.spec or {}).get("seed") == 41]


def _sample(page) -> tuple[int, int] | None:
    """(share of pixels trained in %, distinct values in the live map) as the page shows them now, or None."""
    text = page.evaluate("() => document.body.innerText")
    match = SHARE.search(text)
    distinct = page.evaluate(DISTINCT_JS, LIVE)
    if match is None or distinct is None:
        return None
    return int(match.group(1)), int(distinct)


def test_the_map_appears_coarse_and_sharpens_in_one_job(page):
    spec = dataclasses.replace(tr.PRESETS["tanh"].spec, resolution=(128, 128), steps=400, seed=41)
    job_id = default_store().key("grid", spec)
    _open(page, spec)
    assert _jobs() == [job_id]
    samples: list[tuple[int, int]] = []
    deadline = time.time() + 500
    while time.time() < deadline and not page.locator(MAP).count():
        sample = _sample(page)
        if sample is not None and (not samples or sample != samples[-1]):
            samples.append(sample)
            if len(samples) == 1:
                _shot(page, "explorer-sharpening-first")
        page.wait_for_timeout(250)
    assert page.locator(MAP).count(), "the stored map replaced the live one"
    wait_for_app(page)
    _shot(page, "explorer-sharpened")
    assert runs.status(job_id).state == "done"
    assert _jobs() == [job_id]  # one job, no preview beside it
    shares = [s for s, _ in samples]
    assert len(set(shares)) >= 2, f"the live map was seen at only one stage: {samples}"
    assert shares == sorted(shares) and shares[0] < 100, samples  # it only ever sharpens
    by_share = {}
    for share, distinct in samples:
        by_share[share] = max(by_share.get(share, 0), distinct)
    stages = [by_share[s] for s in sorted(by_share)]
    assert stages == sorted(stages) and stages[-1] > stages[0], samples  # more distinct pixel blocks each pass
    assert stages[0] < 128 * 128, samples  # the first picture was a coarse mosaic, not the full map
