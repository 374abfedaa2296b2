"""Trainability Explorer: the fractal boundary between hyperparameters that train and those that diverge.

One tiny network per pixel (Sohl-Dickstein 2024); a click zooms into the boundary, every level recomputed as a
background job. The whole state lives in the URL, so every view is a shareable link. Each section below is one
function in ``ui/trainability/``. Each view is one job: its map appears coarse within seconds and sharpens as the
job refines it.
"""

import streamlit as st

from ui import nav
from ui.trainability import (cluster, compute, dimension, exports, grid_map, link, navigation, pixel, session, setup,
                             video)

nav.page_setup("pages/1_Trainability_Explorer.py")
state = session.load()

st.title("Trainability Explorer")
st.markdown(
    "Each pixel is **one small neural network trained from scratch** with the two hyperparameters on the axes "
    "(log₁₀ scale). Blue-green pixels **converged**, red-orange ones **diverged**; colours are darkest next "
    "to the boundary, where training is slowest to decide. Sohl-Dickstein (2024) found this boundary is "
    "**fractal**: **click anywhere on the map to zoom in** (each level is recomputed, not enlarged), or choose "
    "*Drag a box* above the map and drag the region you want. Choose *Inspect a pixel* to replay one "
    "network's training."
)
session.show_notice(state)

with st.sidebar:
    setup.sidebar(state)
    where = cluster.compute_on(state)

jobs = compute.view_jobs(state, options=where)
navigation.controls(state, jobs)

map_col, info_col = st.columns([3, 1.15])
with map_col:
    grid_map.map_section(state, jobs)
    pixel.inspection_section(state, jobs)
with info_col:
    grid_map.info_section(state, jobs)
    exports.figure_section(state, jobs)
    link.share_section(state)

dimension_tab, video_tab, path_tab = st.tabs(["Fractal dimension", "Zoom video", "Zoom path"])
with dimension_tab:
    dimension.dimension_section(state, jobs)
with video_tab:
    video.video_section(state, jobs)
with path_tab:
    navigation.path_table(state)

link.write_url(state)
