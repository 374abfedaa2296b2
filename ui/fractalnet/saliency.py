"""What a trained run looks at (saliency on a test image, per column) and what it says about your own picture.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from engine import datasets
from engine.fractalnet.inference import image_rgb, predict_logits, saliency_map, saliency_png, saliency_rgb
from ui.fractalnet.data import load
from ui.fractalnet.results import Result
from ui.fractalnet.setup import P

PICTURE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp"]


def _networks(ncol: int) -> list[tuple[str, int | None]]:
    return [("full net", None), *[(f"column {k}", k) for k in range(ncol)]]


def saliency_section(result: Result) -> bytes | None:
    """|∂ logit / ∂ pixel| of a chosen test image for the full net or one column; returns the picture as PNG."""
    st.markdown("**Saliency map** — |∂ logit / ∂ pixel| for a test image")
    spec, ck = result.spec, result.checkpoint
    try:
        ds = load(spec.get("dataset", "digits"), spec.get("dataset_path"), None)
    except ValueError as exc:
        st.warning(f"The run's dataset is not available here ({exc}); no saliency map.")
        return None
    if not len(ds.x_test):
        return None
    ncol = len(result.summary["accuracy"]["columns"])
    a, b = st.columns(2)
    idx = int(a.number_input("Test image #", 0, len(ds.x_test) - 1, 0, key=P + "sal_index"))
    who = b.selectbox("Network", [name for name, _ in _networks(ncol)], key=P + "sal_column")
    column = dict(_networks(ncol))[who]
    img = ds.x_test[idx]
    sal = saliency_map(ck.model, img, column=column, device="cpu")
    q1, q2 = st.columns(2)
    q1.image(image_rgb(img), caption=f"true: {ds.classes[int(ds.y_test[idx])]}")
    q2.image(saliency_rgb(sal["saliency"]), caption=f"predicted: {ck.classes[sal['predicted']]} "
                                                    f"({float(sal['probabilities'][sal['predicted']]):.1%})")
    return saliency_png(img, sal["saliency"])


def predict_section(result: Result) -> None:
    """The user's own picture, fitted to the model's input, and the top classes of the full net and each column."""
    st.markdown("**Predict on your own image**")
    ck = result.checkpoint
    up = st.file_uploader("An image (png, jpg, …)", type=PICTURE_TYPES, key=P + "predict_file")
    if up is None:
        return
    try:
        arr = datasets.image_from_bytes(up.getvalue(), up.name, ck.config.in_channels, ck.image_size)
        probs = {name: predict_logits(ck.model, arr[None], column=column).softmax(1)[0].numpy()
                 for name, column in _networks(ck.model.num_columns)}
    except ValueError as exc:
        st.error(f"Cannot predict on **{up.name}**: {exc}")
        return
    full = probs["full net"]
    top = np.argsort(-full)[:5]
    st.image(image_rgb(arr, 112), caption=f"as the model sees it ({ck.image_size[0]}x{ck.image_size[1]})")
    st.markdown(f"Prediction: **{ck.classes[top[0]]}** ({full[top[0]]:.1%})")
    st.dataframe(
        {"class": [ck.classes[i] for i in top], **{name: [f"{p[i]:.1%}" for i in top] for name, p in probs.items()}},
        hide_index=True, width="stretch",
    )
