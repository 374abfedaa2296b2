"""Checkpoints that never unpickle: weights and optimiser/RNG state as safetensors, everything else as JSON.

So a checkpoint a stranger uploaded can be opened without running their code, and a run stopped anywhere
resumes exactly: the trainer state holds the optimiser, every random generator and the position in the epoch.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
    """A loaded checkpoint: the model (evaluation mode) and what ``config.json`` says about it, all checked."""

    model: FractalNet
    config: FractalNetConfig
    classes: list[str]
    image_size: tuple[int, int]
    meta: dict
    path: Path

    def trained_on(self) -> dict:
        """The data the run was trained on (``dataset``, ``dataset_path``, ``data_seed``, ``image_size``,
        ``max_test``) as ``config.json`` records it, each value checked (a stranger's checkpoint names them)."""
        return trained_on(self.meta)


MAX_CONFIG_BYTES = 1 << 20  # a checkpoint config is a few kB; a bigger one is not ours
MAX_CLASS_NAME = 200
MAX_IMAGE_SIDE = 4096
_SAFETENSORS_FLOATS = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def _short(value: object, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - an error message must never fail itself
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unfit(what: str, config: FractalNetConfig | None = None) -> ValueError:
    """The one error of a checkpoint that is not one this lab's FractalNet can be built from."""
    arch = "a FractalNet" if config is None else f"the FractalNet its config.json describes ({_arch(config)})"
    return ValueError(f"checkpoint: this checkpoint does not fit {arch}: {what}")


def _arch(config: FractalNetConfig) -> str:
    return (f"columns={config.columns}, filters={config.filters}, {config.num_classes} classes, "
            f"{config.in_channels} input channel(s)")


def _int(name: str, value: object, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _unfit(f"config.json {name}: must be an integer in [{lo}, {hi}], got {_short(value)}")
    return value


def read_checkpoint_config(directory: str | Path) -> dict:
    """``config.json`` of a checkpoint folder, checked: a ``ValueError("checkpoint: …")`` names what is wrong
    (a missing file, not JSON, too big or deep, another format or a newer version, a bad model config)."""
    d = Path(directory)
    path = d / CONFIG_FILE
    try:
        if not d.is_dir() or not path.is_file() or not (d / MODEL_FILE).is_file():
            raise ValueError(f"checkpoint: {_short(str(d), 200)} is not a checkpoint folder "
                             f"(it needs {MODEL_FILE} and {CONFIG_FILE})")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"checkpoint: {_short(str(d), 200)} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise _unfit(f"{CONFIG_FILE} is larger than {MAX_CONFIG_BYTES:,} bytes")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"checkpoint: {CONFIG_FILE} is not readable JSON ({exc})") from None
    except RecursionError:
        raise _unfit(f"{CONFIG_FILE} is nested too deep") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT or not isinstance(meta.get("model"), dict):
        raise _unfit(f"{CONFIG_FILE} is not a FractalNet checkpoint config (format {CHECKPOINT_FORMAT} with a "
                     f"'model' object)")
    version = meta.get("version", CHECKPOINT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= CHECKPOINT_VERSION:
        raise _unfit(f"{CONFIG_FILE} version {_short(version)}: this lab reads checkpoints up to version "
                     f"{CHECKPOINT_VERSION}")
    for name in ("epoch", "step"):
        if name in meta:
            _int(name, meta[name], 0, 2**53)
    if not isinstance(meta.get("complete", False), bool):
        raise _unfit(f"config.json complete: must be true or false, got {_short(meta['complete'])}")
    if not isinstance(meta.get("spec", {}), dict):
        raise _unfit(f"config.json spec: must be an object of TrainSpec fields, got {_short(meta['spec'])}")
    return meta


def checkpoint_model_config(meta: dict) -> FractalNetConfig:
    """The :class:`FractalNetConfig` of a checked ``config.json`` (``ValueError`` when its fields are bad)."""
    try:
        return FractalNetConfig.from_dict(meta["model"])
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _unfit(f"config.json model: {exc}") from None


def _classes(meta: dict, config: FractalNetConfig) -> list[str]:
    classes = meta.get("classes", [str(i) for i in range(config.num_classes)])
    if not isinstance(classes, list) or len(classes) != config.num_classes or any(
            not isinstance(c, (str, int)) or isinstance(c, bool) or len(str(c)) > MAX_CLASS_NAME for c in classes):
        raise _unfit(f"config.json classes: must be a list of {config.num_classes} class names, got "
                     f"{_short(classes)}", config)
    return [str(c) for c in classes]


def _image_size(value: object, config: FractalNetConfig, name: str = "image_size") -> tuple[int, int]:
    lo = config.min_input_size
    if not isinstance(value, (list, tuple)) or len(value) != 2 or any(
            not isinstance(s, int) or isinstance(s, bool) or not lo <= s <= MAX_IMAGE_SIDE for s in value):
        raise _unfit(f"config.json {name}: must be [height, width], integers in [{lo}, {MAX_IMAGE_SIDE}] "
                     f"({config.blocks} blocks halve it {config.blocks} times), got {_short(value)}", config)
    return int(value[0]), int(value[1])


def trained_on(meta: dict) -> dict:
    """The training data a checked ``config.json`` records (see :meth:`Checkpoint.trained_on`)."""
    spec = meta.get("spec", {})
    spec = spec if isinstance(spec, dict) else {}
    out = {"dataset": spec.get("dataset", "digits"), "dataset_path": spec.get("dataset_path"),
           "data_seed": spec.get("data_seed", 0), "image_size": spec.get("image_size"),
           "max_test": spec.get("max_test")}
    if not isinstance(out["dataset"], str) or not 0 < len(out["dataset"]) <= 100:
        raise _unfit(f"config.json spec.dataset: must be a dataset name, got {_short(out['dataset'])}")
    path = out["dataset_path"]
    if path is not None and (not isinstance(path, str) or len(path) > 4096):
        raise _unfit(f"config.json spec.dataset_path: must be a path or null, got {_short(out['dataset_path'])}")
    _int("spec.data_seed", out["data_seed"], 0, 2**32 - 1)
    if out["max_test"] is not None:
        _int("spec.max_test", out["max_test"], 1, 10**9)
    if out["image_size"] is not None:
        _int("spec.image_size", out["image_size"], 1, MAX_IMAGE_SIDE)
    return out


def _check_weights(path: Path, config: FractalNetConfig) -> None:
    """Compare the safetensors header with the tensors ``config``'s model needs, before allocating that model.

    The model is built on the ``meta`` device (shapes only), so a config.json asking for a huge network costs
    nothing unless the weights file really holds those bytes."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            found = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for corrupt files
        raise ValueError(f"checkpoint: {MODEL_FILE} is not a readable safetensors file ({exc})") from None
    with torch.device("meta"):
        needed = {k: v for k, v in FractalNet(config).state_dict().items()}
    missing = sorted(set(needed) - set(found))
    unexpected = sorted(set(found) - set(needed))
    if missing or unexpected:
        raise _unfit(f"{MODEL_FILE} lacks {len(missing)} of its {len(needed)} weights "
                     f"({', '.join(missing[:3]) or 'none'}) and has {len(unexpected)} it does not use "
                     f"({_short(', '.join(unexpected[:3]) or 'none', 200)})", config)
    for name, ref in needed.items():
        shape, dtype = found[name]
        if shape != tuple(ref.shape):
            raise _unfit(f"weight {name} has shape {list(shape)}, the model needs {list(ref.shape)}", config)
        if ref.dtype.is_floating_point != (dtype in _SAFETENSORS_FLOATS):
            raise _unfit(f"weight {name} is {dtype}, the model needs {ref.dtype}", config)


def load_checkpoint(directory: str | Path, device: str | torch.device | None = None) -> Checkpoint:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` (no unpickling; strict keys).

    Anything that does not fit raises ``ValueError("checkpoint: …")``: another architecture's weights, a bad or
    hostile ``config.json``, a truncated or garbage weights file; nothing is allocated beyond what the file holds.
    """
    from safetensors.torch import load_file

    d = Path(directory)
    meta = read_checkpoint_config(d)
    config = checkpoint_model_config(meta)
    classes = _classes(meta, config)
    size = _image_size(meta.get("image_size"), config)
    trained_on(meta)
    dev = resolve_device(device)
    _check_weights(d / MODEL_FILE, config)
    try:
        state = load_file(str(d / MODEL_FILE))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for corrupt files
        raise ValueError(f"checkpoint: {MODEL_FILE} is not a readable safetensors file ({exc})") from None
    model = FractalNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # the header check above makes this unreachable for files safetensors wrote
        raise _unfit(str(exc).splitlines()[0], config) from None
    del state
    model.to(dev).eval()
    return Checkpoint(model, config, classes, size, meta, d)


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
    """Restore what :func:`save_trainer_state` wrote into ``optimizer`` and ``gens``; return the position.

    Every part is checked against this run before anything is restored (``ValueError("resume_from: …")``): a
    damaged or foreign trainer state must not crash later inside the optimiser, or silently train on junk."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = d / STATE_FILE
    if not path.is_file():
        raise ValueError(f"resume_from: {d} has no {STATE_FILE} (only a finished model); cannot resume training")
    try:
        with safe_open(str(path), "pt") as f:
            text = (f.metadata() or {}).get("trainer", "{}")
        tensors = {k: v.clone() for k, v in load_file(str(path)).items()}  # no views of a file that may change
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for corrupt files
        raise ValueError(f"resume_from: {STATE_FILE} is not a readable safetensors file ({exc})") from None
    try:
        meta = json.loads(text) if len(text) <= MAX_CONFIG_BYTES else None
    except (json.JSONDecodeError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        raise _unfit_state("its metadata is not a JSON object")
    if meta.get("optimizer") != optimizer_name:
        raise ValueError(
            f"optimizer: the checkpoint was trained with {_short(meta.get('optimizer'))}, the spec asks "
            f"{optimizer_name!r}"
        )
    pos = _position(meta.get("position"))
    params = [p for g in optimizer.param_groups for p in g["params"]]
    state = _optimizer_state(tensors, meta.get("scalars", {}), params, device)
    groups = _param_groups(meta.get("param_groups"), optimizer.state_dict()["param_groups"])
    rng = {name: tensors.get(f"rng/{name}") for name in ("torch", "cuda", *gens)}
    _check_rng("torch", rng["torch"], torch.get_rng_state(), required=True)
    for name, g in gens.items():
        _check_rng(name, rng[name], g.get_state(), required=False)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
        torch.set_rng_state(rng["torch"])
        if device.type == "cuda" and rng["cuda"] is not None:
            torch.cuda.set_rng_state(rng["cuda"], device)
        for name, g in gens.items():
            if rng[name] is not None:
                g.set_state(rng[name])
    except (RuntimeError, TypeError, KeyError) as exc:
        raise _unfit_state(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return pos


def _unfit_state(what: str) -> ValueError:
    return ValueError(f"resume_from: the trainer state ({STATE_FILE}) does not fit this run: {what}")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _position(raw: object) -> Position:
    names = {f.name: f.type for f in dataclasses.fields(Position)}
    if not isinstance(raw, dict) or not set(raw) <= set(names):
        raise _unfit_state(f"position must be an object of {', '.join(names)}, got {_short(raw)}")
    for key, value in raw.items():
        whole = names[key] in (int, "int")
        if not _number(value) or value < 0 or (whole and not isinstance(value, int)) or abs(value) > 2**53:
            raise _unfit_state(f"position.{key} must be a {'whole ' if whole else ''}number >= 0, got {_short(value)}")
    return Position(**raw)


def _optimizer_state(tensors: dict, scalars: object, params: list, device: torch.device) -> dict[int, dict]:
    state: dict[int, dict] = {}
    for key, val in tensors.items():
        if not key.startswith("optim/"):
            continue
        parts = key.split("/", 2)
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params):
            raise _unfit_state(f"optimizer tensor {_short(key)} names no parameter of this model")
        idx, name = int(parts[1]), parts[2]
        want = () if name == "step" else tuple(params[idx].shape)
        if tuple(val.shape) != want or not val.dtype.is_floating_point:
            raise _unfit_state(f"optimizer tensor {key} has shape {list(val.shape)} ({val.dtype}), parameter {idx} "
                               f"needs {list(want)} floats")
        state.setdefault(idx, {})[name] = val.to(device) if name != "step" else val
    if not isinstance(scalars, dict):
        raise _unfit_state(f"scalars must be an object, got {_short(scalars)}")
    for idx, sc in scalars.items():
        if not str(idx).isdigit() or int(idx) >= len(params) or not isinstance(sc, dict) or not all(
                isinstance(k, str) and _number(v) for k, v in sc.items()):
            raise _unfit_state(f"scalars of {_short(idx)} must be numbers of a parameter of this model")
        state.setdefault(int(idx), {}).update(sc)
    return state


def _compatible(saved: object, current: object) -> bool:
    if current is None or isinstance(current, bool):
        return saved is None or isinstance(saved, bool)
    if _number(current):
        return _number(saved)
    if isinstance(current, (list, tuple)):
        return isinstance(saved, (list, tuple)) and len(saved) == len(current) and all(map(_number, saved))
    return type(saved) is type(current)


def _param_groups(saved: object, current: list[dict]) -> list[dict]:
    """The saved hyperparameters of each group, checked against this optimiser's groups (same parameters, same
    kinds of values); a key this torch does not know is dropped, one it needs and the file lacks is kept."""
    if not isinstance(saved, list) or len(saved) != len(current) or not all(isinstance(g, dict) for g in saved):
        raise _unfit_state(f"param_groups must be {len(current)} objects, got {_short(saved)}")
    groups = []
    for k, (sg, cg) in enumerate(zip(saved, current)):
        if sg.get("params") != cg["params"]:
            raise _unfit_state(f"param group {k} holds other parameters than this model's")
        for key, value in sg.items():
            if key in cg and key != "params" and not _compatible(value, cg[key]):
                raise _unfit_state(f"param group {k}: {key} must be like {_short(cg[key])}, got {_short(value)}")
        groups.append({key: sg.get(key, cg[key]) for key in cg})
    return groups


def _check_rng(name: str, saved: torch.Tensor | None, current: torch.Tensor, required: bool) -> None:
    if saved is None and not required:
        return
    if saved is None or saved.dtype != torch.uint8 or tuple(saved.shape) != tuple(current.shape):
        shape = "missing" if saved is None else f"{list(saved.shape)} {saved.dtype}"
        raise _unfit_state(f"random state {name} is {shape}, this torch needs {list(current.shape)} uint8")


def resume_point(directory: str | Path) -> dict | None:
    """The checkpoint config (with its ``epoch`` and ``step``) of a stopped run that left enough in ``directory``
    to be resumed, else None (it stopped before its first checkpoint)."""
    d = Path(directory)
    try:
        if not (d / STATE_FILE).is_file():
            return None
        meta = read_checkpoint_config(d)
        config = checkpoint_model_config(meta)
        _classes(meta, config)
        _image_size(meta.get("image_size"), config)
        trained_on(meta)
        return meta
    except (OSError, ValueError):
        return None
