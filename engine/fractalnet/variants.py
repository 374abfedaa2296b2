"""Named FractalNets, timm style: ``create_model("small", num_classes=10, in_channels=1)``.

Each variant is one function registered with :func:`register_model`, its facts (what it is for) beside its
architecture; the page, the CLI and the tests list :data:`VARIANTS`, never a copy of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from engine.fractalnet.cost import column_depths, parameter_count
from engine.fractalnet.model import FractalNet, FractalNetConfig


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    make: Callable[..., FractalNetConfig]


VARIANTS: dict[str, Variant] = {}

#: Training knobs any variant may be given (the page offers them beside the variant); the rest is architecture.
OVERRIDABLE = ("join", "drop_path", "local_drop", "global_ratio")


def register_model(name: str, description: str) -> Callable[[Callable[..., FractalNetConfig]], Callable]:
    """Add the decorated config factory to :data:`VARIANTS` as ``name``."""

    def register(make: Callable[..., FractalNetConfig]) -> Callable[..., FractalNetConfig]:
        if name in VARIANTS:
            raise ValueError(f"variant: {name!r} is registered twice")
        VARIANTS[name] = Variant(name, description, make)
        return make

    return register


@register_model("micro", "C=2, B=2: tests and smoke runs")
def micro(**kw: Any) -> FractalNetConfig:
    return FractalNetConfig(**{"columns": 2, "filters": (16, 32), **kw})


@register_model("small", "C=3, B=3: 8x8 digits and 32x32 images alike")
def small(**kw: Any) -> FractalNetConfig:
    return FractalNetConfig(**{"columns": 3, "filters": (32, 64, 96), **kw})


@register_model("medium", "C=3, B=4: 32x32 images (CIFAR) on a CPU")
def medium(**kw: Any) -> FractalNetConfig:
    return FractalNetConfig(**{"columns": 3, "filters": (64, 128, 256, 256), **kw})


@register_model("large", "C=4, B=4: 32x32 images on a GPU")
def large(**kw: Any) -> FractalNetConfig:
    return FractalNetConfig(**{"columns": 4, "filters": (64, 128, 256, 512), **kw})


_PAPER_DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4)  # the paper's per-block dropout; its drop-path is the default one


@register_model("paper-cifar-20", "the paper's CIFAR FractalNet, 20 layers (C=3, B=5)")
def paper_cifar_20(**kw: Any) -> FractalNetConfig:
    return FractalNetConfig(**{"columns": 3, "filters": (64, 128, 256, 512, 512), "dropout": _PAPER_DROPOUT, **kw})


@register_model("paper-cifar-40", "the paper's CIFAR FractalNet, 40 layers (C=4, B=5)")
def paper_cifar_40(**kw: Any) -> FractalNetConfig:
    return FractalNetConfig(**{"columns": 4, "filters": (64, 128, 256, 512, 512), "dropout": _PAPER_DROPOUT, **kw})


def variant_config(name: str, num_classes: int = 10, in_channels: int = 3, **overrides: Any) -> FractalNetConfig:
    """The config of a named variant, with the dataset's classes/channels and any field overridden."""
    if name not in VARIANTS:
        raise ValueError(f"variant: must be one of {list(VARIANTS)}, got {name!r}")
    return VARIANTS[name].make(num_classes=num_classes, in_channels=in_channels, **overrides)


def create_model(
    name: str, num_classes: int = 10, in_channels: int = 3, include_top: bool = True, **overrides: Any
) -> FractalNet:
    """timm-style factory: ``create_model("small", num_classes=10, in_channels=1)``."""
    return FractalNet(variant_config(name, num_classes, in_channels, **overrides), include_top=include_top)


def match_variant(config: FractalNetConfig, ignore: Sequence[str] = ()) -> str | None:
    """The registry name whose config equals ``config`` (its classes and channels aside); the fields named in
    ``ignore`` (e.g. :data:`OVERRIDABLE`, to find the architecture of a run whose join was changed) may differ."""
    for name in VARIANTS:
        ref = variant_config(name, config.num_classes, config.in_channels,
                             **{k: getattr(config, k) for k in ignore})
        if ref == config:
            return name
    return None


def variant_table(num_classes: int = 10, in_channels: int = 3) -> list[dict]:
    """The registry as rows (name, columns, blocks, filters, deepest depth, parameters, min input, description)."""
    rows = []
    for name, v in VARIANTS.items():
        cfg = variant_config(name, num_classes, in_channels)
        rows.append(
            {
                "name": name,
                "columns": cfg.max_columns,
                "blocks": cfg.blocks,
                "filters": list(cfg.filters),
                "deepest_depth": column_depths(cfg)[-1],
                "parameters": parameter_count(cfg),
                "min_input": cfg.min_input_size,
                "description": v.description,
            }
        )
    return rows
