"""FractalNet lab: configure a FractalNet, train it as a background job with live curves, and see what each column
learned on its own (Larsson, Maire & Shakhnarovich, ICLR 2017).

The whole setup lives in the link, and ``?run=<id>`` opens a run, so a configuration or a result can be shared
and survives a reload. Each section below is one function in ``ui/fractalnet/``.
"""

from __future__ import annotations

import streamlit as st

from ui import nav
from ui.downloads import copy_link
from ui.fractalnet import compare, data, model, results, run, saliency, setup, train

nav.page_setup("pages/2_FractalNet_Lab.py")

setup.init_state()
st.title("FractalNet lab")
st.caption(
    "FractalNet (Larsson, Maire & Shakhnarovich, ICLR 2017) grows an ultra-deep network from one expansion rule "
    "and trains it with **drop-path**, so that every column also works as a network on its own. Configure a "
    "model and data, train it in the background, and compare what each column learned with the full net."
)
setup.link_warnings()

st.header("1 · Data")
chosen = data.data_section()

st.header("2 · Model")
config = model.model_section(chosen.dataset)

st.header("3 · Training")
train.training_section(config, chosen)

st.header("4 · Run")
all_runs = run.fractalnet_runs()
status = run.run_section(all_runs)
if status is not None and status.state == "done":
    done = results.results_section(status)
    if done is not None and done.checkpoint is not None:
        left, right = st.columns(2)
        with left:
            saliency_png = saliency.saliency_section(done)
        with right:
            saliency.predict_section(done)
        results.downloads_section(done, saliency_png)
    elif done is not None:
        results.downloads_section(done, None)

st.header("5 · Compare runs")
compare.compare_section(all_runs)

setup.write_link()
with st.sidebar:
    copy_link(label="Link to this setup")
