"""engine.fractalnet.results and metrics: a result folder written once and read back, curves from its rows."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.fractalnet import metrics, results
from engine.fractalnet.checkpoint import resume_point
from engine.fractalnet.train import TrainSpec
from engine.fractalnet.variants import variant_config


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    spec = TrainSpec(model=variant_config("micro"), max_train=64, max_test=32, epochs=1, batch_size=32,
                     warmup_epochs=0.5, bn_calibration=32)
    results.run_to_dir(spec, d, threads=1)
    return d


def _png_size(data: bytes) -> tuple[int, int]:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return img.size


def test_a_result_folder_reads_back(result_dir, tmp_path):
    summary = results.read_summary(result_dir)
    assert len(summary["accuracy"]["columns"]) == 2
    rows = results.read_metrics(result_dir)
    assert [r["kind"] for r in rows].count("epoch") == 1
    files = results.download_files(result_dir)
    assert list(files) == ["model.safetensors", "config.json", "metrics.csv", "summary.json"]
    assert all(isinstance(data, bytes) and data for data, _ in files.values())
    pngs = results.figure_pngs(summary, rows)
    assert set(pngs) == {"loss.png", "accuracy.png", "columns.png", "confusion.png"}
    for data in pngs.values():
        _png_size(data)
    assert _png_size(results.thumbnail(result_dir)) == (360, 240)
    assert results.thumbnail(tmp_path) is None
    assert results.load_model(result_dir).classes == [str(i) for i in range(10)]
    assert resume_point(result_dir)["step"] == 2 and resume_point(tmp_path) is None
    assert results.prior_rows({"resume_from": str(result_dir)}) == rows and results.prior_rows({}) == []


def test_curves_and_live_progress_from_rows():
    rows = [
        {"kind": "step", "epoch": 0.5, "step": 1, "loss": 2.0, "accuracy": 0.1, "images_per_s": 100.0},
        {"kind": "step", "epoch": 1.0, "step": 2, "loss": 1.5, "accuracy": 0.3, "images_per_s": 300.0},
        {"kind": "epoch", "epoch": 1.0, "step": 2, "train_loss": 1.7, "val_loss": 1.6, "val_loss_col0": 1.9,
         "val_accuracy": 0.4, "val_accuracy_col0": 0.2},
    ]
    pts = metrics.curve_points(rows, "loss", 1)
    assert pts == [{"epoch": 0.5, "train (each step)": 2.0}, {"epoch": 1.0, "train (each step)": 1.5},
                   {"epoch": 1.0, "train (epoch mean)": 1.7, "test: full net": 1.6, "test: column 0": 1.9}]
    assert metrics.curve_names(1) == ["train (each step)", "train (epoch mean)", "test: full net", "test: column 0"]
    assert metrics.progress_of(rows) == {"images_per_s": 200.0, "epoch": 1.0, "val_accuracy": 0.4}
    assert metrics.progress_of([]) == {"images_per_s": None, "epoch": None, "val_accuracy": None}
    # a resumed run: its own events start at step 2, so the earlier history contributes step 1 only
    assert metrics.join_history(rows[:2], [rows[1], "not a row"]) == [rows[0], rows[1]]
    assert np.asarray(Image.open(io.BytesIO(metrics.curves_png(rows, 1, "accuracy", "Accuracy")))).std() > 0
