"""Section 3 · Training: optimiser, schedule, epochs and seeds; what the run will cost; the Train button.
"""

from __future__ import annotations

import streamlit as st

from engine.fractalnet.cost import measure_speed, training_cost
from engine.fractalnet.model import FractalNetConfig
from engine.fractalnet.train import TrainSpec
from ui.format import format_duration, format_si
from ui.fractalnet.data import Data
from ui.fractalnet.setup import KIND, P, field_input, get, open_run

LAYOUT = (("optimizer", "lr", "momentum"), ("schedule", "warmup_epochs", "weight_decay"),
          ("epochs", "batch_size", "augment"), ("seed", "max_train"))
SHORT_LABELS = {"augment": "Augment"}  # a quarter of the page cuts the declared "Augment (the dataset's default)"


@st.cache_data(max_entries=16, show_spinner="Timing a few training steps…")
def _speed(config_json: str, shape: tuple[int, int, int], batch: int) -> float:
    return measure_speed(FractalNetConfig.from_json(config_json), shape, batch)


def _spec(config: FractalNetConfig, data: Data) -> TrainSpec | None:
    try:
        return TrainSpec(
            model=config, dataset=data.name, dataset_path=data.path, epochs=get("epochs"),
            batch_size=get("batch_size"), optimizer=get("optimizer"), lr=get("lr"), momentum=get("momentum"),
            weight_decay=get("weight_decay"), schedule=get("schedule"),
            warmup_epochs=min(float(get("warmup_epochs")), float(get("epochs"))), augment=bool(get("augment")),
            seed=get("seed"), max_train=get("max_train"),
        )
    except ValueError as exc:
        st.error(f"Training setup: {exc}")
        return None


def _cost(spec: TrainSpec, data: Data) -> None:
    ds = data.dataset
    n_train = min(len(ds.x_train), spec.max_train or len(ds.x_train))
    cost = training_cost(spec.model, ds.image_size, n_train, len(ds.x_test), spec.epochs, spec.batch_size)
    speed_key = spec.model.to_json() + str(ds.image_size) + str(spec.batch_size)
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("forward pass / image", format_si(cost["forward_flops"], "FLOP"),
                  help=f"{cost['forward_flops']:,.0f} FLOP")
        c2.metric("optimiser steps", format_si(cost["steps"]),
                  help=f"{cost['steps']:,} steps, {cost['steps_per_epoch']:,} per epoch")
        c3.metric("training compute", format_si(cost["total_flops"], "FLOP"),
                  help=f"{cost['total_flops']:.4g} FLOP: training (forward + backward of the sub-networks "
                       "drop-path samples) plus each epoch's test pass of the full net and every column alone")
        measured = st.session_state.get(P + "speed", {}).get(speed_key)
        if measured:
            c4.metric("estimated time", format_duration(n_train * spec.epochs / measured),
                      help=f"measured {measured:,.0f} training images/s here (evaluation adds a little)")
            return
        c4.metric("estimated time", "—")
        if c4.button("Measure speed", key=P + "measure", help="Time a few training steps of this model",
                     icon=":material/timer:"):
            try:
                speed = _speed(spec.model.to_json(), (ds.in_channels, *ds.image_size), min(spec.batch_size, 64))
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory for a huge model: say so, keep going
                st.error(f"Could not time the model: {exc}")
            else:
                st.session_state.setdefault(P + "speed", {})[speed_key] = speed
                st.rerun()


def training_section(config: FractalNetConfig | None, data: Data) -> TrainSpec | None:
    """Draw the training settings and cost; start a run on Train. Returns the spec (None when not trainable)."""
    for col, names in zip(st.columns(len(LAYOUT)), LAYOUT):
        with col:
            for name in names:
                field_input(TrainSpec, name, label=SHORT_LABELS.get(name))
    spec = _spec(config, data) if config is not None and data.dataset is not None else None
    if spec is not None:
        _cost(spec, data)
    left, _, _ = st.columns([1, 1, 3])
    if left.button("Train", key=P + "train", type="primary", disabled=spec is None, width="stretch",
                   icon=":material/play_arrow:"):
        import runs

        open_run(runs.submit(KIND, spec))
    return spec
