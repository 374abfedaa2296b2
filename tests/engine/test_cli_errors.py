"""Every CLI answers an invalid input with one line ``<prog>: error: …`` on stderr and exit code 2, never a
traceback (issue 12, item 13): bad numbers, out-of-range fields, unknown names, missing or hostile files, an
``--out`` that is a file, unwritable or empty, ``--json`` at a folder, devices this machine lacks, run ids that
climb out of the store or exceed the file system's name length, and deeply nested JSON.

Each case runs the CLI's ``main(argv)`` in-process from an empty working folder (an empty ``--out`` must not
write there); two run as real subprocesses. ``CASES`` is also what the before/after survey of the issue walked.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
PROGS = {"fractalnet": "python -m engine.fractalnet", "trainability": "python -m engine.trainability",
         "kronecker": "python -m engine.kronecker", "runs": "python -m runs"}
MODULES = {"fractalnet": "engine.fractalnet.__main__", "trainability": "engine.trainability.__main__",
           "kronecker": "engine.kronecker.__main__", "runs": "runs.__main__"}

TRAIN = ["train", "--variant", "micro", "--dataset", "digits", "--epochs", "1", "--max-train", "64", "--max-test",
         "32", "--bn-calibration", "32", "--out", "{tmp}/fn"]
GRID = ["--preset", "tanh", "--resolution", "4", "--steps", "20", "--width", "4", "--out", "{tmp}/grid"]
LONG = "x" * 300
DEEP = "[" * 50_000 + "]" * 50_000  # 100 kB: fits one argv entry (128 kB) and recurses past Python's limit

# (cli, case, argv with {placeholders}, a word the error line must contain)
CASES: list[tuple[str, str, list[str], str]] = [
    # python -m engine.fractalnet train
    ("fractalnet", "train --epochs 0", [*TRAIN, "--epochs", "0"], "epochs"),
    ("fractalnet", "train --epochs abc", [*TRAIN, "--epochs", "abc"], "epochs"),
    ("fractalnet", "train --epochs 1e400", [*TRAIN, "--epochs", "1e400"], "epochs"),
    ("fractalnet", "train --epochs 10**20", [*TRAIN, "--epochs", "99999999999999999999"], "epochs"),
    ("fractalnet", "train --lr nan", [*TRAIN, "--lr", "nan"], "lr"),
    ("fractalnet", "train --lr inf", [*TRAIN, "--lr", "inf"], "lr"),
    ("fractalnet", "train --lr -1", [*TRAIN, "--lr", "-1"], "lr"),
    ("fractalnet", "train --batch-size 1", [*TRAIN, "--batch-size", "1"], "batch_size"),
    ("fractalnet", "train --dataset bogus", [*TRAIN, "--dataset", "bogus"], "dataset"),
    ("fractalnet", "train --dataset folder (no --path)", [*TRAIN, "--dataset", "folder"], "path"),
    ("fractalnet", "train --path missing", [*TRAIN, "--dataset", "folder", "--path", "{tmp}/missing"], "missing"),
    ("fractalnet", "train --dataset npz --path <text file>", [*TRAIN, "--dataset", "npz", "--path", "{file}"],
     "npz"),
    ("fractalnet", "train --variant bogus", [*TRAIN, "--variant", "bogus"], "variant"),
    ("fractalnet", "train --filters 10**20", [*TRAIN, "--filters", "99999999999999999999"], "filters"),
    ("fractalnet", "train --columns 0", [*TRAIN, "--columns", "0"], "columns"),
    ("fractalnet", "train --dropout 1.5", [*TRAIN, "--dropout", "1.5"], "dropout"),
    ("fractalnet", "train --seed -1", [*TRAIN, "--seed", "-1"], "seed"),
    ("fractalnet", "train --optimizer bogus", [*TRAIN, "--optimizer", "bogus"], "optimizer"),
    ("fractalnet", "train --momentum 1.5", [*TRAIN, "--momentum", "1.5"], "momentum"),
    ("fractalnet", "train --label-smoothing 2", [*TRAIN, "--label-smoothing", "2"], "label_smoothing"),
    ("fractalnet", "train --max-train 0", [*TRAIN, "--max-train", "0"], "max_train"),
    ("fractalnet", "train --image-size 3", [*TRAIN, "--image-size", "3"], "image_size"),
    ("fractalnet", "train --warmup-epochs -1", [*TRAIN, "--warmup-epochs", "-1"], "warmup"),
    ("fractalnet", "train --resume missing", [*TRAIN, "--resume", "{tmp}/missing"], "checkpoint"),
    ("fractalnet", "train --resume <a file>", [*TRAIN, "--resume", "{file}"], "checkpoint"),
    ("fractalnet", "train --resume <other architecture>", [*TRAIN, "--resume", "{other}"], "does not fit"),
    ("fractalnet", "train --device bogus", [*TRAIN, "--device", "bogus"], "device"),
    ("fractalnet", "train --device cuda (no CUDA)", [*TRAIN, "--device", "cuda"], "device"),
    ("fractalnet", "train --threads abc", [*TRAIN, "--threads", "abc"], "threads"),
    ("fractalnet", "train --threads 0", [*TRAIN, "--threads", "0"], "threads"),
    ("fractalnet", "train --out <a file>", [*TRAIN, "--out", "{file}"], "--out"),
    ("fractalnet", "train --out /proc/x", [*TRAIN, "--out", "/proc/x"], "--out"),
    ("fractalnet", "train --out ''", [*TRAIN, "--out", ""], "--out"),
    ("fractalnet", "train --out <300-char name>", [*TRAIN, "--out", "{tmp}/" + LONG], "--out"),
    ("fractalnet", "train --bogus-flag", [*TRAIN, "--bogus-flag"], "unrecognized"),
    ("fractalnet", "train without --out", TRAIN[:-2], "--out"),
    # python -m engine.fractalnet evaluate
    ("fractalnet", "evaluate missing folder", ["evaluate", "{tmp}/missing"], "checkpoint"),
    ("fractalnet", "evaluate <a file>", ["evaluate", "{file}"], "checkpoint"),
    ("fractalnet", "evaluate ''", ["evaluate", ""], "checkpoint"),
    ("fractalnet", "evaluate <other architecture>", ["evaluate", "{other}"], "does not fit"),
    ("fractalnet", "evaluate config classes: 5", ["evaluate", "{badclasses}"], "classes"),
    ("fractalnet", "evaluate config nested 100k deep", ["evaluate", "{deepconfig}"], "config.json"),
    ("fractalnet", "evaluate config spec.data_seed 'x'", ["evaluate", "{badseed}"], "data_seed"),
    ("fractalnet", "evaluate truncated weights", ["evaluate", "{truncated}"], "safetensors"),
    ("fractalnet", "evaluate --dataset bogus", ["evaluate", "{good}", "--dataset", "bogus"], "dataset"),
    ("fractalnet", "evaluate --dataset folder --path missing",
     ["evaluate", "{good}", "--dataset", "folder", "--path", "{tmp}/missing"], "missing"),
    ("fractalnet", "evaluate --device bogus", ["evaluate", "{good}", "--device", "bogus"], "device"),
    ("fractalnet", "evaluate --device cuda (no CUDA)", ["evaluate", "{good}", "--device", "cuda"], "device"),
    # python -m engine.fractalnet predict
    ("fractalnet", "predict missing image", ["predict", "{good}", "{tmp}/missing.png"], "missing"),
    ("fractalnet", "predict missing .npy", ["predict", "{good}", "{tmp}/missing.npy"], "missing"),
    ("fractalnet", "predict <text file as image>", ["predict", "{good}", "{file}"], "image"),
    ("fractalnet", "predict <folder as image>", ["predict", "{good}", "{dir}"], "image"),
    ("fractalnet", "predict pickled .npy", ["predict", "{good}", "{pickled}"], "pickle"),
    ("fractalnet", "predict .npy of 4 dimensions", ["predict", "{good}", "{batch}"], "image"),
    ("fractalnet", "predict --column 99", ["predict", "{good}", "{img}", "--column", "99"], "column"),
    ("fractalnet", "predict --column abc", ["predict", "{good}", "{img}", "--column", "abc"], "column"),
    ("fractalnet", "predict --top 0", ["predict", "{good}", "{img}", "--top", "0"], "top"),
    ("fractalnet", "predict --top -1", ["predict", "{good}", "{img}", "--top", "-1"], "top"),
    ("fractalnet", "predict <other architecture>", ["predict", "{other}", "{img}"], "does not fit"),
    ("fractalnet", "predict --ensemble <other architecture>",
     ["predict", "{good}", "{img}", "--ensemble", "{other}"], "does not fit"),
    ("fractalnet", "predict --device bogus", ["predict", "{good}", "{img}", "--device", "bogus"], "device"),
    ("fractalnet", "predict bogus command", ["frobnicate"], "invalid choice"),
    # python -m engine.trainability
    ("trainability", "--resolution 0", [*GRID, "--resolution", "0"], "resolution"),
    ("trainability", "--resolution 1 2 3", [*GRID, "--resolution", "1", "2", "3"], "resolution"),
    ("trainability", "--resolution abc", [*GRID, "--resolution", "abc"], "resolution"),
    ("trainability", "--resolution 10**11", [*GRID, "--resolution", "99999999999"], "resolution"),
    ("trainability", "--steps 0", [*GRID, "--steps", "0"], "steps"),
    ("trainability", "--steps 1e400", [*GRID, "--steps", "1e400"], "steps"),
    ("trainability", "--width -1", [*GRID, "--width", "-1"], "width"),
    ("trainability", "--preset bogus", [*GRID, "--preset", "bogus"], "preset"),
    ("trainability", "--x-range 5 1", [*GRID, "--x-range", "5", "1"], "x_range"),
    ("trainability", "--x-range nan 1", [*GRID, "--x-range", "nan", "1"], "x_range"),
    ("trainability", "--x-range -inf 1", [*GRID, "--x-range", "-inf", "1"], "range"),
    ("trainability", "--x-range 1 inf", [*GRID, "--x-range", "1", "inf"], "x_range"),
    ("trainability", "--seed -1", [*GRID, "--seed", "-1"], "seed"),
    ("trainability", "--activation bogus", [*GRID, "--activation", "bogus"], "activation"),
    ("trainability", "--batch-size 0", [*GRID, "--batch-size", "0"], "batch_size"),
    ("trainability", "--out <a file>", [*GRID, "--out", "{file}"], "--out"),
    ("trainability", "--out /proc/x", [*GRID, "--out", "/proc/x"], "--out"),
    ("trainability", "--out ''", [*GRID, "--out", ""], "--out"),
    ("trainability", "--out <300-char name>", [*GRID, "--out", "{tmp}/" + LONG], "--out"),
    ("trainability", "--bogus-flag", [*GRID, "--bogus-flag"], "unrecognized"),
    ("trainability", "without --out", GRID[:-2], "--out"),
    ("trainability", "video --spec missing", ["video", "--spec", "{tmp}/missing.json", "--out", "{tmp}/v"],
     "missing"),
    ("trainability", "video --spec <folder>", ["video", "--spec", "{dir}", "--out", "{tmp}/v"], "--spec"),
    ("trainability", "video --spec <not JSON>", ["video", "--spec", "{file}", "--out", "{tmp}/v"], "JSON"),
    ("trainability", "video --spec <nested 100k>", ["video", "--spec", "{deepjson}", "--out", "{tmp}/v"], "deep"),
    ("trainability", "video --spec <fps -1>", ["video", "--spec", "{badvideo}", "--out", "{tmp}/v"], "fps"),
    ("trainability", "video --spec ''", ["video", "--spec", "", "--out", "{tmp}/v"], "--spec"),
    ("trainability", "video --out <a file>", ["video", "--spec", "{goodvideo}", "--out", "{file}"], "--out"),
    ("trainability", "video --out /proc/x", ["video", "--spec", "{goodvideo}", "--out", "/proc/x"], "--out"),
    ("trainability", "video without flags", ["video"], "required"),
    # python -m engine.kronecker
    ("kronecker", "show --base above the diagonal", ["show", "--base", "[[1,1],[1,1]]", "--names", "ab"], "base"),
    ("kronecker", "show --base nested 50k deep", ["show", "--base", DEEP], "base"),
    ("kronecker", "show --base abc", ["show", "--base", "abc"], "base"),
    ("kronecker", "show --base [[1e400]]", ["show", "--base", "[[1e400]]"], "base"),
    ("kronecker", "show --base []", ["show", "--base", "[]"], "base"),
    ("kronecker", "show --second nested 50k deep", ["show", "--second", DEEP], "second"),
    ("kronecker", "show --power 0", ["show", "--power", "0"], "power"),
    ("kronecker", "show --power 10**20", ["show", "--power", "99999999999999999999"], "power"),
    ("kronecker", "show --power abc", ["show", "--power", "abc"], "power"),
    ("kronecker", "show --names a", ["show", "--names", "a"], "names"),
    ("kronecker", "show --preset bogus", ["show", "--preset", "bogus"], "preset"),
    ("kronecker", "show --max-equations -5", ["show", "--max-equations", "-5"], "max-equations"),
    ("kronecker", "show --json <folder>", ["show", "--json", "{dir}"], "--json"),
    ("kronecker", "show --json /proc/x/g.json", ["show", "--json", "/proc/x/g.json"], "--json"),
    ("kronecker", "show --json ''", ["show", "--json", ""], "--json"),
    ("kronecker", "train --width 0", ["train", "--width", "0"], "width"),
    ("kronecker", "train --epochs 1e400", ["train", "--epochs", "1e400"], "epochs"),
    ("kronecker", "train --task bogus", ["train", "--task", "bogus"], "task"),
    ("kronecker", "train --baselines bogus", ["train", "--baselines", "bogus"], "baselines"),
    ("kronecker", "train --device bogus", ["train", "--device", "bogus"], "device"),
    ("kronecker", "train --device cuda (no CUDA)", ["train", "--device", "cuda"], "device"),
    ("kronecker", "train --out <a file>", ["train", "--epochs", "1", "--out", "{file}"], "--out"),
    ("kronecker", "train --out /proc/x", ["train", "--epochs", "1", "--out", "/proc/x"], "--out"),
    ("kronecker", "train --out ''", ["train", "--epochs", "1", "--out", ""], "--out"),
    # python -m runs
    ("runs", "status ../x", ["status", "../x"], "key"),
    ("runs", "status /etc/passwd", ["status", "/etc/passwd"], "key"),
    ("runs", "status ''", ["status", ""], "key"),
    ("runs", "status <300-char id>", ["status", LONG], "key"),
    ("runs", "cancel ../x", ["cancel", "../x"], "key"),
    ("runs", "cancel <300-char id>", ["cancel", LONG], "key"),
    ("runs", "delete ../x", ["delete", "../x"], "key"),
    ("runs", "delete <300-char id>", ["delete", LONG], "key"),
    ("runs", "run ../x", ["run", "../x"], "key"),
    ("runs", "run <300-char id>", ["run", LONG], "key"),
    ("runs", "frobnicate", ["frobnicate"], "invalid choice"),
    ("runs", "status without id", ["status"], "id"),
]


def make_inputs(tmp: Path) -> dict[str, str]:
    """The files the cases point at: checkpoints (good, another architecture, hostile configs), images, specs."""
    from safetensors.torch import save_file

    from engine.fractalnet.checkpoint import save_checkpoint
    from engine.fractalnet.model import FractalNet, FractalNetConfig
    from engine.trainability.presets import preset
    from engine.trainability.video import VideoSpec

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "cwd").mkdir()
    (tmp / "dir").mkdir()
    (tmp / "file.txt").write_text("not an image, not JSON, not a checkpoint\n")
    cfg = FractalNetConfig(columns=2, filters=(8, 12), num_classes=10, in_channels=1)
    extra = {"spec": {"dataset": "digits", "data_seed": 0, "max_test": 32}}
    torch.manual_seed(0)
    save_checkpoint(tmp / "good", FractalNet(cfg), [str(i) for i in range(10)], (8, 8), extra)
    wide = FractalNet(FractalNetConfig(columns=3, filters=(8, 12), num_classes=10, in_channels=1))
    save_checkpoint(tmp / "other", FractalNet(cfg), [str(i) for i in range(10)], (8, 8), extra)
    save_file({k: v.contiguous() for k, v in wide.state_dict().items()}, str(tmp / "other" / "model.safetensors"))
    for name, edit in (("badclasses", lambda m: m.update(classes=5)),
                       ("badseed", lambda m: m["spec"].update(data_seed="x"))):
        d = save_checkpoint(tmp / name, FractalNet(cfg), [str(i) for i in range(10)], (8, 8), extra)
        meta = json.loads((d / "config.json").read_text())
        edit(meta)
        (d / "config.json").write_text(json.dumps(meta))
    d = save_checkpoint(tmp / "deepconfig", FractalNet(cfg), [str(i) for i in range(10)], (8, 8), extra)
    (d / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    d = save_checkpoint(tmp / "truncated", FractalNet(cfg), [str(i) for i in range(10)], (8, 8), extra)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    np.save(tmp / "img.npy", np.zeros((8, 8), np.float32))
    np.save(tmp / "batch.npy", np.zeros((2, 3, 8, 8), np.float32))
    np.save(tmp / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    grid = preset("tanh", resolution=(8, 8), steps=20, width=4, x_range=(0.0, 1.0), y_range=(0.0, 1.0))
    video = VideoSpec(grid=grid, full_x_range=(-3.0, 6.0), full_y_range=(-3.0, 6.0), resolution=(16, 16),
                      frames_per_level=2)
    (tmp / "goodvideo.json").write_text(video.to_json())
    bad = json.loads(video.to_json())
    bad["fps"] = -1
    (tmp / "badvideo.json").write_text(json.dumps(bad))
    return {"tmp": str(tmp), "file": str(tmp / "file.txt"), "dir": str(tmp / "dir"), "good": str(tmp / "good"),
            "other": str(tmp / "other"), "badclasses": str(tmp / "badclasses"), "badseed": str(tmp / "badseed"),
            "deepconfig": str(tmp / "deepconfig"), "truncated": str(tmp / "truncated"),
            "img": str(tmp / "img.npy"), "batch": str(tmp / "batch.npy"), "pickled": str(tmp / "pickled.npy"),
            "deepjson": str(tmp / "deep.json"), "goodvideo": str(tmp / "goodvideo.json"),
            "badvideo": str(tmp / "badvideo.json"), "cwd": str(tmp / "cwd")}


def fill(argv: list[str], paths: dict[str, str]) -> list[str]:
    return [a.format(**paths) if "{" in a and "[" not in a else a for a in argv]


def run_main(cli: str, argv: list[str]) -> int:
    """``main(argv)``'s exit code, whether it returns it or raises SystemExit (as argparse does)."""
    main = importlib.import_module(MODULES[cli]).main
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield make_inputs(tmp_path_factory.mktemp("cli-errors"))
    torch.set_num_threads(old)


@pytest.mark.parametrize("cli,case,argv,word", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_invalid_input_gives_one_error_line_and_exit_2(cli, case, argv, word, paths, capsys, monkeypatch):
    monkeypatch.chdir(paths["cwd"])
    code = run_main(cli, fill(argv, paths))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(PROGS[cli]) and ": error: " in lines[0], lines[0]
    assert word.lower() in lines[0].lower(), lines[0]
    assert not os.listdir(paths["cwd"]), "an invalid command wrote into the working folder"


@pytest.mark.parametrize("cli,argv,word", [
    ("engine.fractalnet", [*TRAIN, "--epochs", "0"], "epochs"),
    ("engine.fractalnet", [*TRAIN, "--out", ""], "--out"),
    ("runs", ["status", "../x"], "key"),
])
def test_invalid_input_as_a_real_command(cli, argv, word, paths):
    proc = subprocess.run([sys.executable, "-m", cli, *fill(argv, paths)], cwd=paths["cwd"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and word in proc.stderr, proc.stderr
    assert not os.listdir(paths["cwd"])


def test_a_real_bug_still_shows_its_traceback(monkeypatch, capsys):
    """Only invalid input is folded into one line: another exception is a bug and keeps its traceback."""
    from engine.cli import cli_main

    @cli_main("prog")
    def main(argv=None):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        main([])

    @cli_main("prog")
    def invalid(argv=None):
        raise ValueError("field: must be in [1, 2],\n got 3")

    assert invalid([]) == 2
    assert capsys.readouterr().err == "prog: error: field: must be in [1, 2], got 3\n"
    monkeypatch.setenv("FRACTAL_LAB_DEBUG", "1")
    with pytest.raises(ValueError):
        invalid([])
