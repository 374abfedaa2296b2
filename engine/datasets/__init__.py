"""Image datasets with no download at run time: built-ins, files users bring, uploads — all checked.

Fractal Lab runs offline, so a dataset is shipped inside an installed package (digits), generated (synthetic
shapes), or a file the user already has; files from users are untrusted and read without unpickling or
extracting anything. Every loader returns an :class:`ImageDataset`; :data:`DATASETS` is the registry.

>>> ds = load_dataset("digits", seed=0)
>>> ds.x_train.shape[1:], ds.num_classes
((1, 8, 8), 10)
"""

from engine.datasets.archives import DEFAULT_MAX_BYTES, MAX_MEMBERS, default_max_bytes
from engine.datasets.builtin import SYNTHETIC_CLASSES, make_synthetic
from engine.datasets.dataset import MAX_CLASSES, Augmentation, ImageDataset, augment_batch
from engine.datasets.formats import read_idx
from engine.datasets.images import (
    IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, MAX_TOTAL_PIXELS, decode_image, image_from_bytes, image_header, load_image,
)
from engine.datasets.pickles import ForbiddenGlobal, PickleTooLarge, RestrictedUnpickler, safe_unpickle
from engine.datasets.preview import SampleGrid, sample_grid
from engine.datasets.registry import DATASETS, DatasetInfo, detect_format, list_datasets, load_dataset, load_upload

__all__ = [
    "DATASETS", "DEFAULT_MAX_BYTES", "IMAGE_EXTENSIONS", "MAX_CLASSES", "MAX_IMAGE_PIXELS", "MAX_MEMBERS",
    "MAX_TOTAL_PIXELS", "SYNTHETIC_CLASSES", "Augmentation", "DatasetInfo", "ForbiddenGlobal", "ImageDataset",
    "PickleTooLarge", "RestrictedUnpickler", "SampleGrid", "augment_batch", "decode_image", "default_max_bytes",
    "detect_format", "image_from_bytes", "image_header", "list_datasets", "load_dataset", "load_image", "load_upload",
    "make_synthetic", "read_idx", "safe_unpickle", "sample_grid",
]
