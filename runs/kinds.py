"""The one registry of job kinds: what each kind is called, which spec class and task function run it, and
which function draws its thumbnail.

Entries are ``"module:name"`` strings resolved on first use, so importing the registry (the Runs page, the CLI,
``import runs``) never imports torch or an engine topic.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable


def resolve(ref: str) -> Any:
    """The object a ``"module:name"`` string names (``ImportError`` / ``AttributeError`` when it is missing)."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"not a 'module:name' reference: {ref!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclasses.dataclass(frozen=True)
class Kind:
    """One job kind. ``task`` is ``run_to_dir(spec, out_dir, progress=None, cancel=None) -> None``;
    ``thumbnail`` is ``thumbnail(result_dir) -> PNG bytes | None`` (None: the store's picture file is used)."""

    name: str
    title: str
    spec: str
    task: str
    thumbnail: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_." for c in self.name):
            raise ValueError(f"kind: must be a non-empty name of letters, digits, '_' or '.', got {self.name!r}")
        for ref in (self.spec, self.task, self.thumbnail):
            if ref is not None and ref.count(":") != 1:
                raise ValueError(f"kind {self.name!r}: not a 'module:name' reference: {ref!r}")

    def spec_class(self) -> type:
        return resolve(self.spec)

    def task_function(self) -> Callable[..., None]:
        return resolve(self.task)

    def thumbnail_function(self) -> Callable[..., bytes | None] | None:
        return resolve(self.thumbnail) if self.thumbnail else None


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("grid", "Trainability grid", spec="engine.trainability.spec:GridSpec",
         task="engine.trainability.results:run_to_dir", thumbnail="engine.trainability.results:thumbnail"),
    Kind("zoom_video", "Zoom video", spec="engine.trainability.video:VideoSpec",
         task="engine.trainability.video:run_to_dir", thumbnail="engine.trainability.video:thumbnail"),
    Kind("fractalnet_train", "FractalNet training", spec="engine.fractalnet.train:TrainSpec",
         task="engine.fractalnet.results:run_to_dir", thumbnail="engine.fractalnet.results:thumbnail"),
    Kind("kron_train", "Kronecker network training", spec="engine.kronecker.spec:KronTrainSpec",
         task="engine.kronecker.results:run_to_dir", thumbnail="engine.kronecker.results:thumbnail"),
)}
BUILT_IN = tuple(KINDS)


def register(kind: Kind) -> Kind:
    """Add (or replace) a kind in this process; a job's record carries its references, so the worker process
    finds a kind registered only by the process that submitted it."""
    KINDS[kind.name] = kind
    return kind


def register_task(kind: str, module: str, spec_cls_name: str, fn_name: str = "run_to_dir", *,
                  thumbnail: str | None = None, title: str | None = None) -> Kind:
    """Make ``kind`` runnable from one module: spec ``module:spec_cls_name``, task ``module:fn_name``, and an
    optional thumbnail function name in the same module."""
    return register(Kind(kind, title or kind, spec=f"{module}:{spec_cls_name}", task=f"{module}:{fn_name}",
                         thumbnail=f"{module}:{thumbnail}" if thumbnail else None))


def get(name: str) -> Kind | None:
    return KINDS.get(name)


def title(name: str) -> str:
    """The kind's title for people (its name when the kind is unknown)."""
    kind = KINDS.get(name)
    return kind.title if kind is not None else name
