"""A checkpoint that does not fit, whatever is wrong with it, is refused with a named ``ValueError`` (issue 12,
item 11): another architecture's weights, a missing, garbage, hostile or oversized ``config.json`` (wrong types,
missing keys, nested junk, huge numbers), a truncated or garbage safetensors file, a damaged trainer state.
Never a RuntimeError, TypeError, KeyError, OverflowError or RecursionError from deep inside torch or json, and
never a model allocated that the weights file does not actually hold.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.fractalnet import FractalNetConfig
from engine.fractalnet.checkpoint import load_checkpoint, resume_point, save_checkpoint
from engine.fractalnet.inference import ensemble_predict, evaluate, predict
from engine.fractalnet.model import FractalNet
from engine.fractalnet.train import TrainSpec, train

ROOT = Path(__file__).resolve().parents[3]
TINY = FractalNetConfig(columns=2, filters=(8, 12))
SPEC = TrainSpec(model=TINY, dataset="digits", max_train=64, max_test=32, epochs=1, batch_size=32, lr=0.004,
                 warmup_epochs=0.5, bn_calibration=32)
IMAGES = np.zeros((2, 1, 8, 8), np.float32)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A real (one-epoch) run's folder: model, config and trainer state."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("fit") / "good"
    train(SPEC, checkpoint_dir=d)
    yield d
    torch.set_num_threads(old)


def _edit_config(edit):
    def mutate(d: Path) -> None:
        meta = json.loads((d / "config.json").read_text())
        text = edit(meta)
        (d / "config.json").write_text(json.dumps(meta) if text is None else text)
    return mutate


def _set(*path_and_value):
    *path, value = path_and_value

    def edit(meta):
        obj = meta
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return _edit_config(edit)


def _other_architecture(d: Path) -> None:
    wide = FractalNet(FractalNetConfig(columns=3, filters=(8, 12), num_classes=10, in_channels=1))
    tmp = save_checkpoint(d / "wide", wide, [str(i) for i in range(10)], (8, 8))
    shutil.move(tmp / "model.safetensors", d / "model.safetensors")
    shutil.rmtree(tmp)


def _weights(tensors):
    def mutate(d: Path) -> None:
        from safetensors.torch import save_file
        save_file(tensors(d), str(d / "model.safetensors"))
    return mutate


def _same_names_wrong_shape(d: Path):
    from safetensors.torch import load_file
    state = {k: v.clone() for k, v in load_file(str(d / "model.safetensors")).items()}
    name = next(k for k in state if k.endswith("weight"))
    state[name] = torch.zeros(2, 2)
    return state


def _bytes(name: str, data):
    def mutate(d: Path) -> None:
        raw = (d / name).read_bytes()
        (d / name).write_bytes(data(raw) if callable(data) else data)
    return mutate


def _drop(mapping: dict, key: str) -> None:
    del mapping[key]


def _remove(name: str):
    return lambda d: (d / name).unlink()


# name -> mutation of a copy of the good run; every surface must refuse it with "checkpoint: ..."
BAD_CHECKPOINTS = {
    "weights of another architecture (3 columns, config says 2)": _other_architecture,
    "weights of another model (a Linear)": _weights(lambda d: {"weight": torch.randn(3, 3), "bias": torch.randn(3)}),
    "same weight names, wrong shape": _weights(_same_names_wrong_shape),
    "integer weights": _weights(lambda d: {k: v.to(torch.int64) for k, v in
                                           FractalNet(FractalNetConfig(columns=2, filters=(8, 12), num_classes=10,
                                                                       in_channels=1)).state_dict().items()}),
    "config.json missing": _remove("config.json"),
    "model.safetensors missing": _remove("model.safetensors"),
    "config.json not JSON": _bytes("config.json", b"{not json"),
    "config.json not UTF-8": _bytes("config.json", b"\xff\xfe\x00junk"),
    "config.json a list": _bytes("config.json", b"[]"),
    "config.json nested 100k deep": _bytes("config.json", b"[" * 100_000 + b"]" * 100_000),
    "config.json of 5 MB": _bytes("config.json", b'{"x": "' + b"a" * 5_000_000 + b'"}'),
    "format of another program": _set("format", "someone-else/model"),
    "version from the future": _set("version", 99),
    "version a string": _set("version", "1"),
    "model a string": _set("model", "abc"),
    "model key missing": _edit_config(lambda m: _drop(m, "model")),
    "model nested junk": _set("model", {"columns": [[[]]]}),
    "model unknown field": _set("model", "bogus", 1),
    "model filters 1e308": _set("model", "filters", [1e308, 1e308]),
    "model filters 10**20": _set("model", "filters", [10**20, 10**20]),
    "model num_classes 2**40": _set("model", "num_classes", 2**40),
    "model in_channels a list": _set("model", "in_channels", [1]),
    "classes an int": _set("classes", 5),
    "classes a dict": _set("classes", {"a": [1]}),
    "classes too few": _set("classes", ["a", "b"]),
    "classes nested lists": _set("classes", [[i] for i in range(10)]),
    "image_size a string": _set("image_size", "abc"),
    "image_size 1e400 (inf)": _edit_config(lambda m: json.dumps(m).replace('"image_size": [8, 8]',
                                                                           '"image_size": [1e400, 8]')),
    "image_size nested": _set("image_size", [[1], [2]]),
    "image_size negative": _set("image_size", [-5, 0]),
    "image_size below the model's minimum": _set("image_size", [2, 2]),
    "image_size missing": _edit_config(lambda m: _drop(m, "image_size")),
    "epoch a string": _set("epoch", "one"),
    "spec a list": _set("spec", []),
    "spec.data_seed a string": _set("spec", "data_seed", "x"),
    "spec.dataset a number": _set("spec", "dataset", 5),
    "spec.max_test 1e400": _edit_config(lambda m: json.dumps(m).replace('"max_test": 32', '"max_test": 1e400')),
    "model.safetensors truncated": _bytes("model.safetensors", lambda raw: raw[: len(raw) // 2]),
    "model.safetensors garbage": _bytes("model.safetensors", bytes(range(256)) * 16),
    "model.safetensors empty": _bytes("model.safetensors", b""),
    "model.safetensors header of 2**60 bytes": _bytes("model.safetensors", (2**60).to_bytes(8, "little") + b"{}"),
    "model.safetensors a folder": lambda d: ((d / "model.safetensors").unlink(), (d / "model.safetensors").mkdir()),
}


def _longer(spec: TrainSpec) -> TrainSpec:
    """The same run one epoch longer: what a resume continues."""
    return TrainSpec.from_dict({**spec.to_dict(), "epochs": spec.epochs + 1})


def _copy(good: Path, tmp_path: Path, mutate) -> Path:
    d = tmp_path / "ck"
    shutil.copytree(good, d)
    mutate(d)
    return d


def _refused(call, *starts: str) -> str:
    with pytest.raises(ValueError) as info:
        call()
    assert type(info.value) is ValueError, type(info.value)
    assert str(info.value).startswith(starts or ("checkpoint: ",)), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_a_checkpoint_that_does_not_fit_is_refused_by_name_everywhere(case, good, tmp_path):
    d = _copy(good, tmp_path, BAD_CHECKPOINTS[case])
    msg = _refused(lambda: load_checkpoint(d))
    _refused(lambda: predict(d, IMAGES))
    _refused(lambda: ensemble_predict([good, d], IMAGES))
    _refused(lambda: train(_longer(SPEC), resume_from=d))
    if "weights" in case or "shape" in case or "architecture" in case:
        assert "does not fit" in msg
    elif "safetensors" not in case:
        assert resume_point(d) is None  # the page offers no resume of it (and asking does not raise)


def test_another_architecture_names_what_differs(good, tmp_path):
    d = _copy(good, tmp_path, _other_architecture)
    msg = _refused(lambda: load_checkpoint(d))
    assert "this checkpoint does not fit the FractalNet its config.json describes (columns=2" in msg
    assert "lacks" in msg or "shape" in msg


def _edit_state(edit):
    """Rewrite trainer_state.safetensors with ``edit(trainer_meta, tensors)`` applied."""
    def mutate(d: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file, save
        path = d / "trainer_state.safetensors"
        with safe_open(str(path), "pt") as f:
            metadata = dict(f.metadata())
        tensors = {k: v.clone() for k, v in load_file(str(path)).items()}
        trainer = json.loads(metadata["trainer"])
        text = edit(trainer, tensors)
        metadata["trainer"] = text if isinstance(text, str) else json.dumps(trainer)
        path.write_bytes(save(tensors, metadata=metadata))
    return mutate


def _optim_tensor(tensors, value):
    key = next(k for k in tensors if k.startswith("optim/") and not k.endswith("/step"))
    tensors[key] = value


BAD_STATES = {
    "truncated": _bytes("trainer_state.safetensors", lambda raw: raw[: len(raw) // 2]),
    "garbage": _bytes("trainer_state.safetensors", b"\x00" * 64),
    "metadata not JSON": _edit_state(lambda m, t: "{not json"),
    "metadata nested 100k deep": _edit_state(lambda m, t: "[" * 100_000 + "]" * 100_000),
    "metadata a list": _edit_state(lambda m, t: "[]"),
    "position with an unknown key": _edit_state(lambda m, t: m.update(position={"epoch": 1, "bogus": 1})),
    "position a string": _edit_state(lambda m, t: m.update(position="start")),
    "position.epoch negative": _edit_state(lambda m, t: m["position"].update(epoch=-1)),
    "position.global_step 1e400": _edit_state(lambda m, t: json.dumps(m).replace('"global_step": 2',
                                                                                  '"global_step": 1e400')),
    "param_groups a string": _edit_state(lambda m, t: m.update(param_groups="junk")),
    "param_groups missing": _edit_state(lambda m, t: _drop(m, "param_groups")),
    "param_groups of other parameters": _edit_state(lambda m, t: m["param_groups"][0].update(params=[0, 1])),
    "lr a string": _edit_state(lambda m, t: m["param_groups"][0].update(lr="abc")),
    "betas of three": _edit_state(lambda m, t: m["param_groups"][0].update(betas=[0.9, 0.9, 0.9])),
    "optimiser tensor of another shape": _edit_state(lambda m, t: _optim_tensor(t, torch.zeros(1))),
    "optimiser tensor of a missing parameter": _edit_state(lambda m, t: t.update({"optim/999/exp_avg":
                                                                                  torch.zeros(1)})),
    "optimiser tensor name junk": _edit_state(lambda m, t: t.update({"optim/x": torch.zeros(1)})),
    "scalars junk": _edit_state(lambda m, t: m.update(scalars={"x": 1})),
    "scalars a list": _edit_state(lambda m, t: m.update(scalars=[1])),
    "torch rng state of floats": _edit_state(lambda m, t: t.update({"rng/torch": torch.zeros(3)})),
    "torch rng state missing": _edit_state(lambda m, t: _drop(t, "rng/torch")),
    "augment rng state too short": _edit_state(lambda m, t: t.update({"rng/augment": torch.zeros(3,
                                                                                                dtype=torch.uint8)})),
}


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_a_trainer_state_that_does_not_fit_is_refused_by_name(case, good, tmp_path):
    d = _copy(good, tmp_path, BAD_STATES[case])
    load_checkpoint(d)  # the model itself is fine: evaluate and predict still work
    msg = _refused(lambda: train(_longer(SPEC), resume_from=d), "resume_from: ")
    assert "trainer" in msg


def test_the_good_checkpoint_still_loads_predicts_and_resumes(good, tmp_path):
    ck = load_checkpoint(good)
    assert ck.config.columns == 2 and ck.classes == [str(i) for i in range(10)] and ck.image_size == (8, 8)
    assert ck.trained_on()["dataset"] == "digits"
    assert predict(good, IMAGES).shape == (2, 10)
    res = train(_longer(SPEC), resume_from=good)
    assert len(res.history) > 0
    assert resume_point(good) is not None


def test_labels_beyond_the_checkpoint_classes_are_refused(good):
    ck = load_checkpoint(good)
    msg = _refused(lambda: evaluate(ck.model, IMAGES, np.array([3, 99])))
    assert "does not fit the data" in msg and "10 classes" in msg


def test_a_hostile_config_allocates_nothing_the_weights_file_does_not_hold(good, tmp_path):
    """config.json asks for a 104-million-parameter net (415 MB of float32) over a 30 kB weights file: refused
    before any of it is allocated (measured as the peak resident memory of a fresh process)."""
    d = _copy(good, tmp_path, _set("model", "filters", [1024, 1024]))
    _edit_config(lambda m: m["model"].update(columns=3))(d)
    code = (
        "import resource, sys, torch\n"
        "from engine.fractalnet.checkpoint import load_checkpoint\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    load_checkpoint(sys.argv[1])\n"
        "    print('loaded')\n"
        "except ValueError as exc:\n"
        "    print('refused', exc)\n"
        "print('grew_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(d)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "refused checkpoint: this checkpoint does not fit" in proc.stdout, proc.stdout
    grew_mb = int(proc.stdout.split("grew_kb")[1]) / 1024
    assert grew_mb < 150, f"loading the hostile checkpoint raised peak memory by {grew_mb:.0f} MB"
