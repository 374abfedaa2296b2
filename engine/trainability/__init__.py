"""The fractal boundary of neural-network trainability (Sohl-Dickstein, 2024): one tiny network per pixel of a
grid of two hyperparameters, coloured by whether it trained. The public API; each name lives in the module
named for what it is (spec, presets, views, grid, cost, dimension, colours, video, results)."""

from engine.trainability.colours import equalized_values, heatmap_style, measure_png, render_measure
from engine.trainability.cost import estimate_seconds, float32_resolves, network_steps
from engine.trainability.dimension import (CombinedEstimate, DimensionEstimate, box_counting_dimension,
                                           combined_dimension)
from engine.trainability.grid import (DTYPES, INIT_KEYS, MAX_VALUE, GridResult, TileResult, convergence_measure,
                                      draw_batches, draw_init, hyperparameters, init_hash, pixel_loss_curve,
                                      run_grid, run_tile)
from engine.trainability.presets import (PRESETS, PUBLISHED_DIMENSIONS, PUBLISHED_NOTE, Preset, matching_preset,
                                         preset, published_dimension)
from engine.trainability.results import run_to_dir
from engine.trainability.spec import ACTIVATIONS, PHASE_SPACES, Activation, GridSpec, GridTile, PhaseSpace
from engine.trainability.video import VideoSpec
from engine.trainability.views import View, box_view, promote_dtype, view_spec, zoom_view

__all__ = [
    "ACTIVATIONS", "DTYPES", "INIT_KEYS", "MAX_VALUE", "PHASE_SPACES", "PRESETS", "PUBLISHED_DIMENSIONS",
    "PUBLISHED_NOTE", "Activation", "CombinedEstimate", "DimensionEstimate", "GridResult", "GridSpec", "GridTile",
    "PhaseSpace", "Preset", "TileResult", "VideoSpec", "View", "box_counting_dimension", "box_view",
    "combined_dimension", "convergence_measure", "draw_batches", "draw_init", "equalized_values",
    "estimate_seconds", "float32_resolves", "heatmap_style", "hyperparameters", "init_hash", "matching_preset",
    "measure_png", "network_steps", "pixel_loss_curve", "preset", "promote_dtype", "published_dimension",
    "render_measure", "run_grid", "run_tile", "run_to_dir", "view_spec", "zoom_view",
]
