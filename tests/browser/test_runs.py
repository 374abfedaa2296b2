"""Runs page in a real browser: stored results are listed with their thumbnail, download as a zip, and delete
(after a confirmation); every kind's picture actually loads."""

from __future__ import annotations

import io
import secrets
import time
import zipfile

import numpy as np
from PIL import Image

import runs
from cache import Store
from engine.trainability import GridSpec
from tests.browser.conftest import wait_for_app
from tests.pages.test_runs_every_kind import computed  # noqa: F401 - the module's real results of every kind
from ui import nav


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((24, 24, 3), (200, 40, 40), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_runs_lists_downloads_and_deletes(page, app_url, _isolated_store):
    # The server reads the session's store; add two results of our own (other browser tests may add theirs).
    store = Store(_isolated_store)
    tag = secrets.token_hex(4)
    keep = f"grid-{tag}keep0000000000"
    gone = f"grid-{tag}gone0000000000"
    now = time.time()
    store.put(keep, arrays={"measure": np.ones((4, 4))}, files={"image.png": _png()},
              record={"spec": GridSpec(activation="tanh").to_dict(), "created": now, "elapsed_s": 3.0})
    store.put(gone, files={"image.png": _png()},
              record={"spec": GridSpec(activation="relu").to_dict(), "created": now + 1, "elapsed_s": 1.0})

    page.goto(f"{app_url}/Runs")
    wait_for_app(page)
    # the sidebar is ui.nav's list of pages: the home page is titled, not named "app" after its file
    sidebar = page.locator("[data-testid='stSidebar']")
    assert sidebar.locator("[data-testid='stSidebarNav']").count() == 0  # Streamlit's own list is hidden
    links = sidebar.locator("[data-testid='stPageLink-NavLink']")
    links.first.wait_for()
    labels = [text.strip().splitlines()[-1] for text in links.all_inner_texts()]  # after the icon's name
    assert labels == [nav.HOME.title] + [p.title for p in nav.PAGES] and labels[0] == "Home"
    keep_row = page.locator(f".st-key-run-{keep}")
    gone_row = page.locator(f".st-key-run-{gone}")
    keep_row.wait_for()
    gone_row.wait_for()
    assert gone_row.get_by_text("preset relu").count() == 1  # the key fields, in the row
    # newest first: the later result's row comes before the earlier one's in the page
    assert page.evaluate(
        "([a, b]) => !!(document.querySelector(a).compareDocumentPosition(document.querySelector(b)) & 4)",
        [f".st-key-run-{gone}", f".st-key-run-{keep}"],
    )
    # the thumbnail is the grid kind's picture of the entry (runs.thumbnail), actually loaded by the browser
    width = Image.open(io.BytesIO(runs.thumbnail(keep))).size[0]
    img = keep_row.locator("img").first
    img.wait_for()
    assert page.evaluate("(el) => el.complete && el.naturalWidth", img.element_handle()) == width

    with page.expect_download() as dl_info:
        keep_row.get_by_role("button", name="Download (.zip)").click()
    path = dl_info.value.path()
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert f"{keep}/image.png" in names and f"{keep}/record.json" in names and f"{keep}/measure.npy" in names

    gone_row.get_by_role("button", name="Delete…").click()
    gone_row.get_by_text("Delete this run?").wait_for()  # one click only asks
    assert store.has(gone)
    gone_row.get_by_role("button", name="Yes, delete").click()
    gone_row.wait_for(state="detached")
    wait_for_app(page)
    assert not store.has(gone) and store.has(keep)
    assert page.locator(f".st-key-run-{keep}").count() == 1
    page.reload()
    wait_for_app(page)
    page.locator(f".st-key-run-{keep}").wait_for()
    assert page.locator(f".st-key-run-{gone}").count() == 0


def test_every_kind_shows_its_picture(page, app_url, _isolated_store, computed):  # noqa: F811
    """A real result of each built-in kind: its row's picture is loaded by the browser, at the size of the
    kind's own thumbnail (not a broken image, not "no picture")."""
    store = Store(_isolated_store)
    ids = {}
    for kind in ("grid", "zoom_video", "fractalnet_train", "kron_train"):
        spec, folder = computed[kind]
        ids[kind] = store.key(kind, spec)
        store.commit(ids[kind], folder, {"kind": kind, "spec": spec.to_dict(), "elapsed_s": 1.0})
    page.goto(f"{app_url}/Runs")
    wait_for_app(page)
    for kind, run_id in ids.items():
        row = page.locator(f".st-key-run-{run_id}")
        row.wait_for()
        img = row.locator("img").first
        img.wait_for()
        width = Image.open(io.BytesIO(runs.thumbnail(run_id))).size[0]
        loaded = page.evaluate("(el) => el.complete && el.naturalWidth", img.element_handle())
        assert loaded == width, f"{kind}: picture {loaded} px wide, thumbnail {width}"
