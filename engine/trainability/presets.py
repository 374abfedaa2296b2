"""The paper's six experiments, each with an initial view that shows its boundary and the dimension the paper
published for it, so a number measured here is always set beside the right published one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from engine.trainability.spec import GridSpec


@dataclass(frozen=True)
class Preset:
    """One experiment: its spec, and the box-counting dimension the paper reports for it (``experiment`` is the
    paper's name of that experiment)."""

    name: str
    title: str
    description: str
    spec: GridSpec
    paper_dimension: float  # Sohl-Dickstein 2024, Figure 1 / Table 1 (4096² zoom sequences)
    experiment: str
    #: Share of its view's network-steps actually run (diverged networks stop early): the prior of a cost
    #: estimate until a grid of the experiment ran here (runs.rates). Measured on the initial view at 512² x 500
    #: (bench/refinement.py --sizes 512: network-steps of the exact map / (512² * 500)).
    stepped: float = 1.0


_FULL = dict(x_range=(-3.0, 6.0), y_range=(-3.0, 6.0))

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("tanh", "tanh, full batch",
               "The headline figure: a tanh network trained full batch, input- vs output-layer learning rate.",
               GridSpec(activation="tanh", **_FULL), 1.66, "tanh, full batch", stepped=0.657),
        Preset("relu", "ReLU, full batch",
               "The same experiment with a ReLU network: the boundary is rougher in some places, smoother in "
               "others.",
               GridSpec(activation="relu", **_FULL), 1.20, "ReLU, full batch", stepped=0.337),
        Preset("linear", "deep linear (identity), N = n",
               "A linear network (identity activation) on as many samples as its width: fractal even without a "
               "nonlinearity.",
               GridSpec(activation="identity", **_FULL), 1.17, "deep linear network (identity, N = n)", stepped=0.306),
        Preset("tanh_minibatch", "tanh, minibatch 16",
               "tanh with stochastic gradient descent on 16 rows per step (the same draws for every pixel).",
               GridSpec(activation="tanh", batch_size=16, **_FULL), 1.55, "tanh, minibatch 16", stepped=0.654),
        Preset("tanh_single", "tanh, dataset size 1", "tanh trained on a single datapoint.",
               GridSpec(activation="tanh", dataset_size=1, **_FULL), 1.41, "tanh, dataset size 1", stepped=0.579),
        Preset("offset", "weight offset vs learning rate",
               "tanh with one learning rate for both layers (y) and an offset added to every input-layer weight "
               "(x), re-added before every step as in the authors' code (offset_every_step=False adds it once).",
               GridSpec(activation="tanh", phase_space="offset_vs_lr", x_range=(-5.0, 1.0), y_range=(-2.0, 4.0),
                        offset_every_step=True),
               1.98, "tanh, parameter offset vs learning rate", stepped=0.783),
    ]
}

DEFAULT_PRESET = "tanh"

PUBLISHED_NOTE = (
    "Published values (Sohl-Dickstein 2024) were measured with the paper's estimator (median local box-counting "
    "slope, pooled over a zoom sequence) on 4096x4096-pixel images at many zoom levels. Estimates from a few "
    "hundred pixels cover a much shorter range of box sizes and will differ, typically by a tenth or more."
)

#: ``{preset: published dimension}``, read off the registry above.
PUBLISHED_DIMENSIONS: dict[str, float] = {name: p.paper_dimension for name, p in PRESETS.items()}


def preset(name: str, **overrides: Any) -> GridSpec:
    """The spec of preset ``name`` with ``overrides`` applied (validated like any spec)."""
    if name not in PRESETS:
        raise ValueError(f"preset: must be one of {', '.join(PRESETS)}, got {name!r}")
    return dataclasses.replace(PRESETS[name].spec, **overrides)


def published_dimension(name: str) -> dict | None:
    """The published value for a preset as ``{"value", "experiment", "note"}``, or None if unknown."""
    p = PRESETS.get(name)
    if p is None:
        return None
    return {"value": p.paper_dimension, "experiment": p.experiment, "note": PUBLISHED_NOTE}


def matching_preset(spec_dict: dict[str, Any]) -> str | None:
    """The preset whose science fields equal ``spec_dict``'s (ignoring view, resolution and dtype), else None:
    how a stored grid finds its way back to the experiment it zoomed into."""
    ignore = {"x_range", "y_range", "resolution", "dtype"}
    for name, p in PRESETS.items():
        d = p.spec.to_dict()
        if all(d.get(k) == spec_dict.get(k) for k in d if k not in ignore):
            return name
    return None
