"""Trainer, checkpoints, resume, task function and CLI: tiny models on a slice of digits, a few steps each."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from engine.datasets import load_dataset
from engine.errors import Cancelled
from engine.fractalnet import FractalNetConfig, calibrate_batch_norm, variant_config
from engine.fractalnet.__main__ import main as cli_main
from engine.fractalnet.checkpoint import CONFIG_FILE, MODEL_FILE, STATE_FILE, load_checkpoint, save_checkpoint
from engine.fractalnet.cost import steps_per_epoch
from engine.fractalnet.inference import confusion_matrix, ensemble_predict, predict, saliency_map
from engine.fractalnet.metrics import METRICS_FILE, read_metrics_csv
from engine.fractalnet.results import SUMMARY_FILE, run_to_dir
from engine.fractalnet.train import TrainSpec, lr_at, train

TINY = FractalNetConfig(columns=2, filters=(8, 12))


def _spec(**kw) -> TrainSpec:
    base = dict(model=TINY, dataset="digits", max_train=192, max_test=96, epochs=2, batch_size=32, lr=0.004,
                warmup_epochs=0.5, bn_calibration=96)
    base.update(kw)
    return TrainSpec(**base)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convs gain nothing from a second thread, and on a busy shared machine it makes them several times
    slower (each parallel region waits for a descheduled thread)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0, max_train=192, max_test=96)


class CancelAfter:
    """Says 'stop' from the n-th check on (the trainer checks once before every step)."""

    def __init__(self, n: int):
        self.n = n
        self.calls = 0

    def is_set(self) -> bool:
        self.calls += 1
        return self.calls > self.n


def test_spec_round_trips_and_validates():
    spec = _spec(model=variant_config("micro", join="learned"), optimizer="adamw", schedule="step",
                 milestones=(0.3, 0.6))
    back = TrainSpec.from_json(spec.to_json())
    assert back == spec and back.content_hash() == spec.content_hash()
    assert back.model.join == "learned" and back.milestones == (0.3, 0.6)
    for kw, field in [({"epochs": 0}, "epochs"), ({"optimizer": "rmsprop"}, "optimizer"), ({"lr": 0.0}, "lr"),
                      ({"schedule": "poly"}, "schedule"), ({"precision": "fp8"}, "precision"),
                      ({"batch_size": 1}, "batch_size"), ({"milestones": (1.5,)}, "milestones")]:
        with pytest.raises(ValueError, match=f"^{field}"):
            _spec(**kw)


def test_schedules_warm_up_then_decay():
    spec = _spec(epochs=10, lr=0.1, warmup_epochs=1.0)
    per, total = 10, 100
    lrs = [lr_at(spec, s, total, per) for s in range(total)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.001
    step = _spec(epochs=10, lr=0.1, warmup_epochs=0.0, schedule="step", milestones=(0.5, 0.75), gamma=0.1)
    assert [lr_at(step, s, total, per) for s in (0, 49, 50, 75)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert steps_per_epoch(65, 32) == 2 and steps_per_epoch(66, 32) == 3


def test_tiny_training_run_learns(digits):
    seen = []
    spec = _spec(model=variant_config("micro"), epochs=4, batch_size=16, lr=0.01, schedule="constant",
                 warmup_epochs=0.0, label_smoothing=0.0)
    res = train(spec, callback=lambda f, info: seen.append((f, info)), dataset=digits)
    steps = [i for _, i in seen if i["kind"] == "step"]
    epochs = [i for _, i in seen if i["kind"] == "epoch"]
    assert len(steps) == 4 * 12 and len(epochs) == 4
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] == pytest.approx(1.0)
    first = np.mean([s["loss"] for s in steps[:5]])
    last = np.mean([s["loss"] for s in steps[-5:]])
    assert last < 0.8 * first
    assert epochs[-1]["val_accuracy"] > 0.3  # ten classes: chance is 0.1
    for key in ("loss", "accuracy", "lr", "images_per_s", "drop"):
        assert key in steps[0]
    for key in ("train_loss", "val_accuracy", "val_accuracy_col0", "val_accuracy_col1", "images_per_s"):
        assert key in epochs[0]
    s = res.summary
    assert len(s["accuracy"]["columns"]) == 2 and 0 <= s["accuracy"]["full"] <= 1
    cm = np.array(s["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 96
    assert res.config.in_channels == 1 and res.config.num_classes == 10
    assert not res.model.training


def test_checkpoint_round_trip_and_inference_helpers(tmp_path, digits):
    res = train(_spec(epochs=1), dataset=digits)
    d = save_checkpoint(tmp_path / "ck", res.model, res.classes, res.image_size)
    assert (d / MODEL_FILE).is_file() and (d / CONFIG_FILE).is_file()
    # Weights are plain safetensors, the rest JSON: nothing in a checkpoint is unpickled.
    from safetensors.torch import load_file

    assert set(load_file(str(d / MODEL_FILE))) == set(res.model.state_dict())
    assert json.loads((d / CONFIG_FILE).read_text())["model"] == res.config.to_dict()
    ck = load_checkpoint(d)
    x = digits.x_test[:16]
    with torch.no_grad():
        want = res.model(torch.from_numpy(x))
        got = ck.model(torch.from_numpy(x))
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(ck.model(torch.from_numpy(x), column=0), res.model(torch.from_numpy(x), column=0))
    p = predict(d, x)
    assert p.shape == (16, 10) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert np.allclose(ensemble_predict([d, d], x), p, atol=1e-6)
    assert np.array_equal(predict(d, (x * 255).astype(np.uint8)).argmax(1), p.argmax(1))
    cm = confusion_matrix(ck.model, digits.x_test, digits.y_test)
    assert cm.sum() == len(digits.y_test) and np.trace(cm) == int((predict(d, digits.x_test).argmax(1)
                                                                      == digits.y_test).sum())
    sal = saliency_map(ck.model, x[0])
    assert sal["saliency"].shape == (8, 8) and sal["saliency"].max() == pytest.approx(1.0)
    assert sal["saliency"].min() >= 0 and sal["predicted"] == int(p[0].argmax())
    with pytest.raises(ValueError, match="images"):
        predict(d, np.full((1, 1, 8, 8), 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match="checkpoint"):
        load_checkpoint(tmp_path)


def test_corrupt_checkpoint_is_refused(tmp_path, digits):
    res = train(_spec(epochs=1, max_train=64), dataset=load_dataset("digits", max_train=64, max_test=32))
    d = save_checkpoint(tmp_path / "ck", res.model, res.classes, res.image_size)
    (d / MODEL_FILE).write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(ValueError, match="safetensors"):
        load_checkpoint(d)


def test_cancel_leaves_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path, digits):
    spec = _spec(epochs=2, model=FractalNetConfig(columns=2, filters=(8, 12), dropout=0.1))
    straight = train(spec, dataset=digits)
    # cancel.is_set() is checked before each of the 6 steps of an epoch, before calibration and before each
    # column's validation pass: check 8 is inside epoch 1's validation, check 12 before step 9 (epoch 2).
    for checks, step, epoch in [(7, 6, 0), (11, 8, 1)]:
        out = tmp_path / f"partial{checks}"
        with pytest.raises(Cancelled):
            train(spec, cancel=CancelAfter(checks), checkpoint_dir=out, dataset=digits)
        for name in (MODEL_FILE, CONFIG_FILE, STATE_FILE, METRICS_FILE):
            assert (out / name).is_file()
        meta = json.loads((out / CONFIG_FILE).read_text())
        assert (meta["step"], meta["epoch"], meta["complete"]) == (step, epoch, False)
        resumed = train(spec, resume_from=out, dataset=digits)
        a, b = straight.model.state_dict(), resumed.model.state_dict()
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
        assert resumed.summary["steps"] == straight.summary["steps"] == 12
        assert resumed.summary["accuracy"]["columns"] == pytest.approx(straight.summary["accuracy"]["columns"])
        assert [r["step"] for r in resumed.history] == [r["step"] for r in straight.history]
    with pytest.raises(ValueError, match="resume_from"):
        train(_spec(model=variant_config("micro", columns=3)), resume_from=out, dataset=digits)
    with pytest.raises(ValueError, match="optimizer"):
        train(dataclasses.replace(spec, optimizer="sgd"), resume_from=out, dataset=digits)


def test_run_to_dir_writes_the_result_files(tmp_path):
    infos = []
    spec = _spec(epochs=1, model=variant_config("micro", join="learned"), optimizer="sgd", lr=0.05)
    run_to_dir(spec, tmp_path, progress=lambda f, info: infos.append((f, info)))
    for name in ("model.safetensors", "config.json", "metrics.csv", "summary.json", "spec.json"):
        assert (tmp_path / name).is_file(), name
    assert TrainSpec.from_json((tmp_path / "spec.json").read_text()) == spec
    summary = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert set(summary["accuracy"]) == {"full", "columns"} and len(summary["accuracy"]["columns"]) == 2
    assert len(summary["confusion_matrix"]) == 10 and summary["join_weights"] is not None
    assert {"train_s", "train_images_per_s"} <= set(summary["timings"])
    rows = read_metrics_csv(tmp_path / METRICS_FILE)
    assert [r["kind"] for r in rows].count("epoch") == 1 and rows[0]["kind"] == "step"
    assert all(0 <= f <= 1 for f, _ in infos) and infos[-1][1]["kind"] == "done"
    json.dumps([i for _, i in infos])  # the job runner stores these: they must be JSON-able
    assert load_checkpoint(tmp_path).config.join == "learned"


def test_calibration_gives_each_column_its_own_statistics(digits):
    res = train(_spec(epochs=1), dataset=digits)
    m = res.model
    x = torch.from_numpy(digits.x_train[:64])
    calibrate_batch_norm(m, x, batch_size=64)
    bn = m.blocks[1].paths[1][0][1]  # fed by block 0's join: its input differs per configuration
    assert not torch.allclose(bn.running_mean, bn.column_running_mean[1])
    # Column 1's statistics are exactly the batch statistics of its own pre-norm activations.
    acts = {}

    def keep_input(mod, inputs, output):  # returns None: a forward hook's return value would replace the output
        acts["x"] = inputs[0].detach().clone()

    h = bn.register_forward_hook(keep_input)
    with torch.no_grad():
        m(x, column=1)
    h.remove()
    # (upstream layers normalise with the unbiased variance they stored: agreement to ~1e-4, not bitwise)
    torch.testing.assert_close(bn.column_running_mean[1], acts["x"].mean(dim=(0, 2, 3)), rtol=1e-3, atol=1e-3)


def test_bf16_precision_runs_on_cpu(digits):
    res = train(_spec(epochs=1, precision="bf16", max_train=64), dataset=load_dataset("digits", max_train=64,
                                                                                       max_test=32))
    assert res.summary["precision"] == "bf16" and np.isfinite(res.history[0]["loss"])


def test_cli_train_evaluate_predict(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli_main(["train", "--variant", "micro", "--dataset", "digits", "--epochs", "1", "--max-train", "96",
                   "--max-test", "48", "--batch-size", "32", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "test accuracy: full net" in text and (out / "summary.json").is_file()
    assert cli_main(["evaluate", str(out), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["test_images"] == 48 and len(ev["columns"]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert ev["full"] == pytest.approx(summary["accuracy"]["full"])
    img = tmp_path / "digit.npy"
    np.save(img, load_dataset("digits", max_test=1).x_test[:1])
    assert cli_main(["predict", str(out), str(img), "--top", "2"]) == 0
    assert "digit.npy:" in capsys.readouterr().out


def test_load_image_fits_uploads_to_the_model(tmp_path):
    import io

    from PIL import Image

    from engine.datasets import load_image

    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[4:12, 6:10] = 255
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    x = load_image(buf.getvalue(), in_channels=1, image_size=(8, 8))
    assert x.shape == (1, 1, 8, 8) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert x[0, 0, 4, 4] > 0.5 and x[0, 0, 0, 0] == 0
    inv = load_image(buf.getvalue(), in_channels=1, image_size=(8, 8), invert=True)
    np.testing.assert_allclose(inv, 1 - x)
    assert load_image(rgb, in_channels=3, image_size=(8, 8)).shape == (1, 3, 8, 8)
    np.save(tmp_path / "a.npy", np.ones((8, 8), dtype=np.float32))
    assert load_image(tmp_path / "a.npy", 1, (8, 8)).sum() == 64
    with pytest.raises(ValueError, match="image"):
        load_image(b"not an image", 1, (8, 8))


def test_auto_threads_backs_off_on_a_busy_machine(monkeypatch):
    import os

    from engine.fractalnet.train import auto_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert auto_threads() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert auto_threads() == torch.get_num_threads()
