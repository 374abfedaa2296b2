"""The one list of pages, and which page re-opens which kind of run.

The home page's cards, the sidebar, the page titles and the Runs page's "Open in ..." links are all drawn from
here, so adding a page or a job kind is one edit. Page files never move: their URL paths are in shared links.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import streamlit as st

from runs import kinds
from ui.state import spec_query


@dataclasses.dataclass(frozen=True)
class Page:
    file: str  # from the repository root: what st.page_link and st.switch_page take
    title: str
    icon: str  # a Material icon, drawn from Streamlit's bundled font (emoji need a font the machine may lack)
    url_path: str  # what Streamlit makes of the file name: the address people share
    description: str


HOME = Page("app.py", "Home", ":material/home:", "", "What the lab is, with a card for every page.")
PAGES: tuple[Page, ...] = (
    Page("pages/1_Trainability_Explorer.py", "Trainability explorer", ":material/blur_on:", "Trainability_Explorer",
         "Train one tiny network per pixel of a grid of hyperparameters (e.g. the two layers' learning rates), "
         "colour converged against diverged, click to zoom into the boundary — every level recomputed, not "
         "upscaled — and measure its box-counting dimension (Sohl-Dickstein, 2024)."),
    Page("pages/2_FractalNet_Lab.py", "FractalNet lab", ":material/account_tree:", "FractalNet_Lab",
         "Configure a FractalNet (Larsson et al., ICLR 2017): ultra-deep CNNs grown by a recursive expansion rule "
         "and trained with drop-path. Train it with live curves and see how well each column does on its own."),
    Page("pages/3_Kronecker_Lab.py", "Kronecker lab", ":material/grid_on:", "Kronecker_Lab",
         "Grow a self-similar layer graph by Kronecker-multiplying a small lower-triangular adjacency matrix with "
         "itself; see its adjacency, data flow and streams, and train it as a network against fair baselines."),
    Page("pages/4_Runs.py", "Runs and artifacts", ":material/folder_open:", "Runs",
         "Every job and cached result, newest first: status, thumbnails, names and notes, re-open, resume, "
         "compare settings, download and delete."),
)
EXPLORER, FRACTALNET_LAB, KRONECKER_LAB, RUNS = PAGES

# kind -> (the page that re-opens a stored run of it, the link's words)
REOPEN: dict[str, tuple[Page, str]] = {
    "grid": (EXPLORER, "Open in the explorer"),
    "zoom_video": (EXPLORER, "Open its view in the explorer"),
    "fractalnet_train": (FRACTALNET_LAB, "Open in the FractalNet lab"),
    "kron_train": (KRONECKER_LAB, "Open in the Kronecker lab"),
}


@dataclasses.dataclass(frozen=True)
class Link:
    page: Page
    label: str
    query: dict[str, str]


def _grid_spec_query(grid_spec: Mapping[str, Any]) -> dict[str, str]:
    """The explorer's link to one grid: every GridSpec field as its declared query parameter."""
    return spec_query(kinds.KINDS["grid"].spec_class(), grid_spec)


def reopen_link(kind: str, run_id: str, spec: Mapping[str, Any] | None) -> Link | None:
    """The link that re-opens a stored run on its page (None for a kind no page shows). A grid or a zoom video
    opens the explorer on its grid (a video's lives under ``"grid"``); a training run opens its lab with
    ``?run=<id>``. Raises (KeyError, ValueError) for a spec the page cannot show, so the caller can say so."""
    target = REOPEN.get(kind)
    if target is None:
        return None
    page, label = target
    if kind == "grid":
        query = _grid_spec_query(spec or {})
    elif kind == "zoom_video":
        query = _grid_spec_query((spec or {})["grid"])
    else:
        query = {"run": run_id}
    return Link(page, label, query)


def page_of(file: str) -> Page:
    for page in (HOME, *PAGES):
        if page.file == file:
            return page
    raise KeyError(f"{file!r} is not in ui.nav.PAGES")


def sidebar() -> None:
    """Links to every page, titled as :data:`PAGES` names them (Streamlit's own list would call the home
    page "app", after its file; it is hidden in .streamlit/config.toml)."""
    with st.sidebar:
        for page in (HOME, *PAGES):
            st.page_link(page.file, label=page.title, icon=page.icon)


def page_setup(file: str) -> Page:
    """The browser tab's title and icon for the page ``file`` (e.g. ``"pages/4_Runs.py"``), and the sidebar;
    call first on every page. Returns the page's :class:`Page`."""
    page = page_of(file)
    title = "Fractal Lab" if page is HOME else f"{page.title} · Fractal Lab"
    st.set_page_config(page_title=title, page_icon=page.icon, layout="wide")
    sidebar()
    return page
