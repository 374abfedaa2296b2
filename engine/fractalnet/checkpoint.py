"""Checkpoints that never unpickle: weights and optimiser/RNG state as safetensors, everything else as JSON.

So a checkpoint a stranger uploaded can be opened without running their code, and a run stopped anywhere
resumes exactly: the trainer state holds the optimiser, every random generator and the position in the epoch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from engine.device import resolve_device
from engine.fractalnet.model import FractalNet, FractalNetConfig
from engine.io import write_bytes_atomic, write_json_atomic

CHECKPOINT_FORMAT = "fractal-lab/fractalnet-checkpoint"
CHECKPOINT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "trainer_state.safetensors"


def _save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    write_bytes_atomic(path, data, fsync=False)  # the store fsyncs every file when it commits the result


def save_checkpoint(
    directory: str | Path, model: FractalNet, classes: Sequence[str], image_size: Sequence[int],
    extra: dict | None = None,
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (enough to rebuild and run the model) into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _save_safetensors(d / MODEL_FILE, dict(model.state_dict()), {"format": CHECKPOINT_FORMAT})
    cfg = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": model.config.to_dict(),
        "classes": list(classes),
        "image_size": [int(s) for s in image_size],
        **(extra or {}),
    }
    write_json_atomic(d / CONFIG_FILE, cfg, fsync=False, indent=2)
    return d


@dataclass
class Checkpoint:
    model: FractalNet
    config: FractalNetConfig
    classes: list[str]
    image_size: tuple[int, int]
    meta: dict
    path: Path


def read_checkpoint_config(directory: str | Path) -> dict:
    d = Path(directory)
    path = d / CONFIG_FILE
    if not path.is_file() or not (d / MODEL_FILE).is_file():
        raise ValueError(f"checkpoint: {d} needs {MODEL_FILE} and {CONFIG_FILE}")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"checkpoint: {path} is not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT or "model" not in meta:
        raise ValueError(f"checkpoint: {path} is not a FractalNet checkpoint config (format {CHECKPOINT_FORMAT})")
    return meta


def load_checkpoint(directory: str | Path, device: str | torch.device | None = None) -> Checkpoint:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` (no unpickling; strict keys)."""
    from safetensors.torch import load_file

    d = Path(directory)
    meta = read_checkpoint_config(d)
    config = FractalNetConfig.from_dict(meta["model"])
    dev = resolve_device(device)
    model = FractalNet(config)
    try:
        state = load_file(str(d / MODEL_FILE))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"checkpoint: {d / MODEL_FILE} is not a readable safetensors file ({exc})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint: weights do not match the config (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})"
        )
    model.to(dev).eval()
    classes = [str(c) for c in meta.get("classes", [str(i) for i in range(config.num_classes)])]
    size = tuple(int(s) for s in meta.get("image_size", (0, 0)))
    return Checkpoint(model, config, classes, size, meta, d)  # type: ignore[arg-type]


@dataclass
class Position:
    """Where a run stands (saved in the trainer state, so a resume continues mid-epoch)."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # steps done inside the current epoch
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_correct: float = 0.0
    epoch_seen: int = 0
    epoch_time: float = 0.0
    train_time: float = 0.0
    images_seen: int = 0


def save_trainer_state(
    d: Path, optimizer: torch.optim.Optimizer, pos: Position, gens: dict[str, torch.Generator],
    optimizer_name: str, device: torch.device,
) -> None:
    """Write ``trainer_state.safetensors``: optimiser tensors, every RNG state, and the position as metadata."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim/{idx}/{key}"] = val
            else:
                scalars.setdefault(str(idx), {})[key] = val
    tensors["rng/torch"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng/cuda"] = torch.cuda.get_rng_state(device)
    for name, g in gens.items():
        tensors[f"rng/{name}"] = g.get_state()
    meta = {
        "position": dataclasses.asdict(pos),
        "param_groups": sd["param_groups"],
        "optimizer": optimizer_name,
        "scalars": scalars,
    }
    _save_safetensors(d / STATE_FILE, tensors, {"format": CHECKPOINT_FORMAT, "trainer": json.dumps(meta)})


def load_trainer_state(
    d: Path, optimizer: torch.optim.Optimizer, gens: dict[str, torch.Generator], optimizer_name: str,
    device: torch.device,
) -> Position:
    """Restore what :func:`save_trainer_state` wrote into ``optimizer`` and ``gens``; return the position."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = d / STATE_FILE
    if not path.is_file():
        raise ValueError(f"resume_from: {d} has no {STATE_FILE} (only a finished model); cannot resume training")
    with safe_open(str(path), "pt") as f:
        meta = json.loads((f.metadata() or {}).get("trainer", "{}"))
    tensors = load_file(str(path))
    if meta.get("optimizer") != optimizer_name:
        raise ValueError(
            f"optimizer: the checkpoint was trained with {meta.get('optimizer')!r}, the spec asks {optimizer_name!r}"
        )
    state: dict[int, dict] = {}
    for key, val in tensors.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = val.to(device) if name != "step" else val
    for idx, sc in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(sc)
    groups = meta["param_groups"]
    cur = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in cur]:
        raise ValueError("resume_from: the optimizer state does not match this model's parameters")
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng/torch"])
    if device.type == "cuda" and "rng/cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng/cuda"], device)
    for name, g in gens.items():
        if f"rng/{name}" in tensors:
            g.set_state(tensors[f"rng/{name}"])
    return Position(**meta["position"])


def resume_point(directory: str | Path) -> dict | None:
    """The checkpoint config (with its ``epoch`` and ``step``) of a stopped run that left enough in ``directory``
    to be resumed, else None (it stopped before its first checkpoint)."""
    d = Path(directory)
    if not (d / STATE_FILE).is_file():
        return None
    try:
        return read_checkpoint_config(d)
    except ValueError:
        return None
