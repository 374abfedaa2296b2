"""Section 1 · Data: a built-in dataset or the user's file (checked, then kept in the store), and a preview.
"""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from cache import uploads
from engine import datasets
from ui.fractalnet.setup import BUILTIN, P, UPLOAD, ensure, get


class Data(NamedTuple):
    name: str | None  # the loader (None while an upload is missing)
    path: str | None
    dataset: datasets.ImageDataset | None


@st.cache_resource(max_entries=6, show_spinner="Loading the dataset…")
def load(name: str, path: str | None, max_train: int | None) -> datasets.ImageDataset:
    return datasets.load_dataset(name, path=path, seed=0, max_train=max_train)


def _upload_box() -> None:
    fmt = st.selectbox(
        "Format", ["auto", *datasets.list_datasets(needs_path=True)], key=P + "upload_format",
        format_func=lambda k: "detect from the file" if k == "auto" else datasets.DATASETS[k].title,
    )
    up = st.file_uploader(
        "Dataset file (.zip, .npz, .tar.gz)", type=["zip", "npz", "gz", "tgz", "tar"], key=P + "upload_file",
        help="CIFAR python archive, MNIST IDX files in a zip/tar, a zip of class sub-folders of images, "
             "or an .npz. Checked before use; nothing in it is executed.",
    )
    if up is not None:
        data = up.getvalue()
        token = (uploads.upload_id(data), fmt)
        if st.session_state.get(P + "upload_checked") != token:
            st.session_state[P + "upload_checked"] = token
            try:
                ds = datasets.load_upload(data, up.name, dataset=fmt, seed=0)
                kept = uploads.save(data, up.name, name=ds.name, summary=ds.summary())
            except ValueError as exc:
                st.session_state[P + "upload_error"] = (up.name, str(exc))
            else:
                st.session_state[P + "upload_error"] = None
                st.session_state[P + "upload"] = kept.id
        err = st.session_state.get(P + "upload_error")
        if err:
            st.error(f"Cannot use **{err[0]}**: {err[1]}")
    kept = uploads.find(get("upload"))
    if kept:
        st.success(f"Using **{kept.original_name}** (read as {datasets.DATASETS[kept.name].title}).")
    elif get("upload"):
        st.warning("The uploaded file of this link is not on this machine: upload it again.")


def _choice() -> tuple[str | None, str | None]:
    """(loader name, path) of the chosen data, or (None, None) when an upload is still missing."""
    if get("dataset") != UPLOAD:
        return get("dataset"), None
    kept = uploads.find(get("upload"))
    return (kept.name, str(kept.path)) if kept else (None, None)


def data_section() -> Data:
    left, right = st.columns([1, 2])
    with left:
        st.selectbox(
            "Dataset", [*BUILTIN, UPLOAD], key=ensure("dataset"),
            format_func=lambda k: datasets.DATASETS[k].title if k in datasets.DATASETS else "Upload a dataset file…",
        )
        if get("dataset") == UPLOAD:
            _upload_box()
        else:
            st.caption(datasets.DATASETS[get("dataset")].description)
    name, path = _choice()
    ds = None
    if name is not None:
        try:
            ds = load(name, path, None)
        except ValueError as exc:
            st.error(f"The dataset cannot be loaded: {exc}")
    with right:
        if ds is None:
            st.info("Choose a built-in dataset or upload a file to see its samples.")
        else:
            st.markdown(
                f"**{len(ds.x_train):,}** training and **{len(ds.x_test):,}** test images · "
                f"{ds.image_size[0]}x{ds.image_size[1]} · {ds.in_channels} channel(s) · {ds.num_classes} classes · "
                f"augmentation: pad-crop {ds.augmentation.pad_crop} px"
                + (", horizontal flips" if ds.augmentation.hflip else ", no flips")
            )
            grid = datasets.sample_grid(ds, per_class=10, max_classes=12)
            st.image(grid.labelled(), caption="Random training samples, one row per class"
                     + (f" (first 12 of {ds.num_classes} classes)" if ds.num_classes > 12 else ""))
    return Data(name, path, ds)
