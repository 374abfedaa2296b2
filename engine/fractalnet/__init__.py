"""FractalNet (Larsson, Maire & Shakhnarovich, ICLR 2017): the network, its named variants, what it costs, and
training it so that every column is measured on its own. ``from engine.fractalnet import create_model``.
"""

from engine.fractalnet.checkpoint import Checkpoint, load_checkpoint, read_checkpoint_config, save_checkpoint
from engine.fractalnet.cost import (
    column_depths,
    column_parameter_counts,
    describe,
    expected_train_flops,
    forward_flops,
    measure_speed,
    parameter_count,
    steps_per_epoch,
    training_cost,
)
from engine.fractalnet.inference import (
    confusion_matrix,
    ensemble_predict,
    evaluate,
    predict,
    predict_logits,
    saliency_map,
)
from engine.fractalnet.model import (
    JOINS,
    MAX_COLUMNS,
    DropPathSample,
    FractalBatchNorm2d,
    FractalBlock,
    FractalNet,
    FractalNetConfig,
    block_structure,
    calibrate_batch_norm,
)
from engine.fractalnet.train import OPTIMIZERS, PRECISIONS, SCHEDULES, TrainResult, TrainSpec, train
from engine.fractalnet.variants import (
    VARIANTS,
    create_model,
    match_variant,
    register_model,
    variant_config,
    variant_table,
)

__all__ = [
    "JOINS", "MAX_COLUMNS", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "VARIANTS", "Checkpoint", "DropPathSample",
    "FractalBatchNorm2d", "FractalBlock", "FractalNet", "FractalNetConfig", "TrainResult", "TrainSpec",
    "block_structure", "calibrate_batch_norm", "column_depths", "column_parameter_counts", "confusion_matrix",
    "create_model", "describe", "ensemble_predict", "evaluate", "expected_train_flops", "forward_flops",
    "load_checkpoint", "match_variant", "measure_speed", "parameter_count", "predict", "predict_logits",
    "read_checkpoint_config", "register_model", "saliency_map", "save_checkpoint", "steps_per_epoch", "train",
    "training_cost", "variant_config", "variant_table",
]
