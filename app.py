"""Fractal Lab — home page (``streamlit run app.py``): what the lab is, and a card for every page in
``ui/nav.PAGES``."""

import streamlit as st

from ui import home, nav

nav.page_setup("app.py")

st.title("Fractal Lab")
st.markdown(
    "A workbench for **seeing and measuring fractal structure in neural networks**. Everything here runs on "
    "your machine (CPU, or CUDA when you have it); long computations run as background jobs that survive a "
    "page reload, and every result is cached on disk and downloadable."
)

cols = st.columns(3)
for i, page in enumerate(nav.PAGES):
    with cols[i % len(cols)]:
        with st.container(border=True):
            st.page_link(page.file, label=page.title, icon=page.icon)
            st.caption(page.description)

store_root, from_env = home.store_location()
elsewhere = ("That folder is set by `FRACTAL_LAB_CACHE`." if from_env else
             "Set `FRACTAL_LAB_CACHE` to keep them elsewhere.")
with st.expander("How it works", icon=":material/info:"):
    st.markdown(
        "- **Engine first.** Every capability is a Python function in `engine/` driven by a small spec "
        "dataclass; the pages only collect inputs, start jobs and draw results. The same specs drive the "
        "command-line tools (`python -m engine.trainability --help`).\n"
        "- **Jobs.** Grids, training runs and videos run in their own processes, with progress and cancel. "
        "Reload the page or open a second tab: the job is still there (`python -m runs list` shows them too).\n"
        f"- **Cache.** Results are stored under `{store_root}` keyed by the spec's hash, so nothing is computed "
        f"twice. {elsewhere}\n"
        "- **Shareable views.** Each page keeps its setup in the URL: copy the address to share a view."
    )
