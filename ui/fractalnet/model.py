"""Section 2 · Model: a named variant or your own C, B, filters; join and drop-path; per-column facts; the block.
"""

from __future__ import annotations

import streamlit as st

from engine.datasets import ImageDataset
from engine.fractalnet.cost import describe
from engine.fractalnet.model import MAX_COLUMNS, FractalNetConfig, block_structure
from engine.fractalnet.variants import VARIANTS, variant_config
from engine.specs import field_info
from ui.fractalnet.diagram import block_figure
from ui.fractalnet.setup import CUSTOM, MODEL_FIELDS, P, ensure, field_input, get


def _parse_list(text: str, cast, what: str) -> tuple:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ValueError(f"{what}: give a number, or one per block separated by commas")
    try:
        return tuple(cast(p) for p in parts)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a comma-separated list of numbers") from None


def model_config(num_classes: int, in_channels: int) -> FractalNetConfig:
    """The configured model (``ValueError`` naming the field when the custom text does not make one)."""
    overrides = {k: get(k) for k in MODEL_FIELDS}
    if get("variant") != CUSTOM:
        return variant_config(get("variant"), num_classes=num_classes, in_channels=in_channels, **overrides)
    filters = _parse_list(get("filters"), int, "filters")
    cols = _parse_list(get("columns"), int, "columns")
    drops = _parse_list(get("dropout"), float, "dropout")
    return FractalNetConfig(
        columns=cols[0] if len(cols) == 1 else cols, filters=filters,
        dropout=drops[0] if len(drops) == 1 else drops, num_classes=num_classes, in_channels=in_channels,
        **overrides,
    )


def _settings() -> None:
    st.selectbox(
        "Variant", [*VARIANTS, CUSTOM], key=ensure("variant"),
        format_func=lambda k: f"{k} — {VARIANTS[k].description}" if k in VARIANTS
        else "custom — your own C, B, filters",
    )
    if get("variant") == CUSTOM:
        st.text_input("Columns C (one, or one per block)", key=ensure("columns"),
                      help=f"1..{MAX_COLUMNS}; a block with C columns has 2^C - 1 convs")
        st.text_input("Filters per block (the number of blocks B)", key=ensure("filters"))
        st.text_input("Dropout (one rate, or one per block)", key=ensure("dropout"))
    join = field_info(FractalNetConfig, "join")  # a radio: two choices read better side by side
    st.radio(join.label, list(join.meta.choices), key=ensure("join"), horizontal=True, help=join.meta.help)
    field_input(FractalNetConfig, "drop_path")
    left, right = st.columns(2)
    with left:
        field_input(FractalNetConfig, "local_drop", disabled=not get("drop_path"))
    with right:
        field_input(FractalNetConfig, "global_ratio", disabled=not get("drop_path"))


def _facts(config: FractalNetConfig) -> None:
    info = describe(config)
    st.markdown(
        f"**{info['parameters']:,}** parameters · B = {info['blocks']} blocks · "
        f"convs per block {', '.join(map(str, info['convs_per_block']))} · needs images ≥ "
        f"{info['min_input_size']}x{info['min_input_size']}"
    )
    st.dataframe(
        {"column": [f"column {k}" for k in range(info["columns"])],
         "depth (convs)": info["column_depths"],
         "parameters alone": info["column_parameters"]},
        hide_index=True, width="stretch",
    )


def _diagram(config: FractalNetConfig) -> None:
    if config.blocks > 1 and len(set(config.block_columns)) > 1:
        which = st.select_slider("Block to draw", list(range(config.blocks)), key=P + "diagram_block")
    else:
        which = 0
    s = block_structure(config, which)
    st.markdown(
        f"**One fractal block** (block {which}: C = {s['columns']}, {s['conv_count']} convs, "
        f"deepest path {s['deepest_path']} convs, {s['in_channels']} → {s['out_channels']} channels) — drawn "
        f"from the model's own layout."
    )
    st.plotly_chart(block_figure(s), key=P + "block_fig", width="stretch")


def model_section(ds: ImageDataset | None) -> FractalNetConfig | None:
    """Draw the model's settings, facts and diagram; return the config (None when it cannot be trained on ``ds``)."""
    left, right = st.columns([1, 2])
    config: FractalNetConfig | None = None
    with left:
        _settings()
        try:
            config = model_config(ds.num_classes if ds else 10, ds.in_channels if ds else 3)
        except ValueError as exc:
            st.error(f"Model: {exc}")
        if config is not None:
            _facts(config)
            if ds is not None and min(ds.image_size) < config.min_input_size:
                st.error(
                    f"Model: {ds.image_size[0]}x{ds.image_size[1]} images are too small for {config.blocks} blocks "
                    f"of 2x2 pooling (need {config.min_input_size}x{config.min_input_size}); pick fewer blocks."
                )
                config = None
    with right:
        if config is not None:
            _diagram(config)
    return config
