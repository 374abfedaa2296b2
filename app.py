"""Fractal Lab — home page.

Run with ``streamlit run app.py``. The explorers live in ``pages/`` (Streamlit's multipage convention); this page
says what the lab is and links to the explorers that exist in this checkout.
"""

from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent

# (page file, title, icon, what a user finds there)
EXPLORERS = [
    (
        "pages/1_Trainability_Explorer.py",
        "Trainability explorer",
        ":material/blur_on:",
        "Train one tiny network per pixel of a grid of hyperparameters (e.g. the two layers' learning rates), "
        "colour converged against diverged, click to zoom into the boundary — every level recomputed, not "
        "upscaled — and measure its box-counting dimension (Sohl-Dickstein, 2024).",
    ),
    (
        "pages/2_FractalNet_Lab.py",
        "FractalNet lab",
        ":material/account_tree:",
        "Configure a FractalNet (Larsson et al., ICLR 2017): ultra-deep CNNs grown by a recursive expansion rule "
        "and trained with drop-path. Train it with live curves and see how well each column does on its own.",
    ),
    (
        "pages/3_Kronecker_Lab.py",
        "Kronecker lab",
        ":material/grid_on:",
        "Grow a self-similar layer graph by Kronecker-multiplying a small lower-triangular adjacency matrix with "
        "itself; see its adjacency, data flow and streams, and train it as a network against fair baselines.",
    ),
    (
        "pages/4_Runs.py",
        "Runs and artifacts",
        ":material/folder_open:",
        "Every job and cached result, newest first: status, thumbnails, re-open, download and delete.",
    ),
]

st.set_page_config(page_title="Fractal Lab", page_icon="🌀", layout="wide")

st.title("Fractal Lab")
st.markdown(
    "A workbench for **seeing and measuring fractal structure in neural networks**. Everything here runs on "
    "your machine (CPU, or CUDA when you have it); long computations run as background jobs that survive a "
    "page reload, and every result is cached on disk and downloadable."
)

available = [e for e in EXPLORERS if (ROOT / e[0]).exists()]
if not available:
    st.info("No explorer pages are installed in this checkout yet.")
cols = st.columns(max(1, min(3, len(available))))
for i, (path, title, icon, blurb) in enumerate(available):
    with cols[i % len(cols)]:
        with st.container(border=True):
            st.page_link(path, label=title, icon=icon)
            st.caption(blurb)

with st.expander("How it works"):
    st.markdown(
        "- **Engine first.** Every capability is a Python function in `engine/` driven by a small spec "
        "dataclass; the pages only collect inputs, start jobs and draw results. The same specs drive the "
        "command-line tools (`python -m engine.trainability --help`).\n"
        "- **Jobs.** Grids, training runs and videos run in their own processes, with progress and cancel. "
        "Reload the page or open a second tab: the job is still there.\n"
        "- **Cache.** Results are stored under `cache/data/` keyed by the spec's hash, so nothing is computed "
        "twice. Set `FRACTAL_LAB_CACHE` to keep them elsewhere.\n"
        "- **Shareable views.** Each page keeps its setup in the URL: copy the address to share a view."
    )
