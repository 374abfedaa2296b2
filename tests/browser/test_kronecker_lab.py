"""Real-browser test of the Kronecker lab: edit the base matrix in the table and see the drawing change."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from tests.browser.conftest import wait_for_app

pytestmark = pytest.mark.browser

EDGE_COUNT_JS = """() => {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  for (const gd of plots) {
    if (gd.data && gd.data.length && gd.data[0].name === 'edges') {
      return gd.data[0].x.filter(v => v === null).length;  // one null separator per drawn edge
    }
  }
  return -1;
}"""


def _metric(pg, label: str) -> str:
    box = pg.locator("[data-testid='stMetric']").filter(has_text=label).first
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def test_editing_the_matrix_redraws_the_graph(page, tmp_path):
    pg = page
    pg.goto(pg.app_url + "/Kronecker_Lab")
    wait_for_app(pg)
    pg.wait_for_selector("[data-testid='stDataFrame'] canvas")
    # Streamlit renders every tab's chart up front, so the data-flow figure is readable before its tab opens.
    pg.wait_for_function(f"({EDGE_COUNT_JS})() === 27")
    assert _metric(pg, "Edges") == "27"
    pg.screenshot(path=str(tmp_path / "before.png"), full_page=True)

    # Edit the matrix through the page's "Paste a matrix" box (the table itself is a canvas grid whose cells a
    # fixed-position click did not always hit): X3 now reads X2 only, so the example becomes 16 edges.
    pg.get_by_text("Paste a matrix").click()
    pg.get_by_label("Matrix (JSON rows or `1 0; 1 1`)").fill("[[1,0,0],[1,1,0],[0,1,1]]")
    pg.get_by_label("Layer names").fill("abc")
    pg.get_by_role("button", name="Apply").click()

    pg.wait_for_function(f"({EDGE_COUNT_JS})() === 16")
    wait_for_app(pg)
    assert _metric(pg, "Edges") == "16"
    pg.wait_for_function("() => window.location.search.includes('0%2C1%2C1') || "
                         "window.location.search.includes('0,1,1')")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(pg.url).query)
    assert query["base"] == ["1,0,0;1,1,0;0,1,1"]
    pg.get_by_role("tab", name="Data flow").click()
    pg.wait_for_timeout(500)
    pg.screenshot(path=str(tmp_path / "after.png"), full_page=True)

    # The graph download holds the edited graph.
    with pg.expect_download() as dl:
        pg.get_by_role("button", name="graph.json").click()
    data = json.loads(open(dl.value.path()).read())
    assert data["nodes"] == 9 and data["labels"][1] == "ab"
    assert len([1 for r, c in zip(data["adjacency"]["rows"], data["adjacency"]["cols"]) if r > c]) == 16
