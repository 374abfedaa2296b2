"""A finished run's folder: the one place that writes it (the ``fractalnet_train`` job task) and reads it back.

Files: ``model.safetensors`` + ``config.json`` (the checkpoint), ``trainer_state.safetensors`` (for resuming),
``metrics.csv`` (the rows of :mod:`~engine.fractalnet.metrics`), ``summary.json`` (final accuracy of the full
net and of each column, confusion matrix, timings) and ``spec.json``. Pages ask this module, never a file name.
"""

from __future__ import annotations

from pathlib import Path


from engine.fractalnet.checkpoint import CONFIG_FILE, MODEL_FILE, Checkpoint, load_checkpoint, resume_point
from engine.fractalnet.charts import chart_png, columns_chart, run_charts
from engine.fractalnet.metrics import METRICS_FILE, read_metrics, write_metrics
from engine.fractalnet.train import TrainSpec, torch_threads, train
from engine.errors import DamagedResult
from engine.io import check_safetensors, damaged, read_stored_json, write_bytes_atomic, write_json_atomic

SUMMARY_FILE = "summary.json"
SPEC_FILE = "spec.json"
DOWNLOADS = {MODEL_FILE: "application/octet-stream", CONFIG_FILE: "application/json", METRICS_FILE: "text/csv",
             SUMMARY_FILE: "application/json"}

__all__ = ["DOWNLOADS", "SPEC_FILE", "SUMMARY_FILE", "figure_pngs", "download_files", "load_model", "prior_rows",
           "read_metrics", "read_summary", "resume_point", "run_to_dir", "thumbnail"]


def run_to_dir(
    spec: TrainSpec, out_dir: str | Path, progress=None, cancel=None, device=None, threads: int | str | None = "auto",
) -> None:
    """Train ``spec`` and write the result files into ``out_dir``. ``progress(fraction, info)`` receives every
    metrics row (the page draws its live curves from them). On cancel the last state is left in ``out_dir`` (a
    checkpoint to resume from, via ``TrainSpec(resume_from=out_dir)``) and :class:`engine.errors.Cancelled` is
    raised. ``threads``: torch CPU threads (default ``"auto"``, see :func:`engine.fractalnet.train.auto_threads`)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(d / SPEC_FILE, spec.to_json(indent=2).encode(), fsync=False)
    with torch_threads(threads):
        result = train(spec, callback=progress, cancel=cancel, device=device, checkpoint_dir=d)
    write_metrics(d, result.history)
    write_json_atomic(d / SUMMARY_FILE, result.summary, fsync=False, indent=2)
    if progress is not None:
        progress(1.0, {"kind": "done", "accuracy": result.summary["accuracy"]["full"],
                       "accuracy_columns": result.summary["accuracy"]["columns"]})


def _is_fraction(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and 0.0 <= x <= 1.0


def read_summary(result_dir: str | Path) -> dict:
    """Final accuracy (``{"full", "columns"}``), loss, confusion matrix, classes, timings, ... of a finished run.
    :class:`~engine.errors.DamagedResult` naming the file when it is missing, unparsable or lacks those."""
    path = Path(result_dir) / SUMMARY_FILE
    summary = read_stored_json(path)
    acc = summary.get("accuracy")
    matrix = summary.get("confusion_matrix")
    if not (isinstance(acc, dict) and _is_fraction(acc.get("full")) and isinstance(acc.get("columns"), list)
            and all(_is_fraction(c) for c in acc["columns"])):
        raise damaged(path, "has no test accuracy of the full net and of each column")
    if not (isinstance(matrix, list) and all(isinstance(r, list) and len(r) == len(matrix) for r in matrix)):
        raise damaged(path, "has no square confusion matrix")
    return summary


def load_model(result_dir: str | Path, device: str = "cpu") -> Checkpoint:
    """The run's trained model with its classes and image size: :class:`~engine.errors.DamagedResult` when its
    files are missing or truncated, ``ValueError("checkpoint: …")`` when they do not fit (see
    :func:`~engine.fractalnet.checkpoint.load_checkpoint`)."""
    d = Path(result_dir)
    read_stored_json(d / CONFIG_FILE)
    check_safetensors(d / MODEL_FILE)
    return load_checkpoint(d, device=device)


def prior_rows(spec: dict | None) -> list[dict]:
    """A resumed run's rows from before its checkpoint (its own job events start after it)."""
    src = (spec or {}).get("resume_from")
    return read_metrics(src) if src else []


def download_files(result_dir: str | Path) -> dict[str, tuple[bytes, str]]:
    """What a user takes away: ``{file name: (bytes, mime)}`` of the checkpoint, the metrics and the summary."""
    d = Path(result_dir)
    return {name: ((d / name).read_bytes(), mime) for name, mime in DOWNLOADS.items() if (d / name).is_file()}


def figure_pngs(summary: dict, rows: list[dict]) -> dict[str, bytes]:
    """The run's charts as PNG files (loss, accuracy, each column vs the full net, confusion matrix), drawn from
    the same chart descriptions, colours and line widths as the FractalNet page (``engine.fractalnet.charts``)."""
    return {name: chart_png(chart) for name, chart in run_charts(summary, rows).items()}


def thumbnail(result_dir: str | Path) -> bytes | None:
    """A small picture of the run for the Runs list: the test accuracy of each column alone and of the full net
    (the paper's claim at a glance); None without a finished summary or with a damaged one."""
    d = Path(result_dir)
    if not (d / SUMMARY_FILE).is_file():
        return None
    try:
        summary = read_summary(d)
    except DamagedResult:
        return None
    return chart_png(columns_chart(summary, height=240), width=360, scale=1.0)
