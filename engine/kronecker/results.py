"""A ``kron_train`` result folder: the one module that writes it and reads it back.

The job runner, the CLI and the page all meet at this folder, so its file names live here only: a page asks for
the run (:func:`read`), its downloads (:func:`files`, :func:`checkpoints`) or its picture (:func:`thumbnail`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.errors import DamagedResult
from engine.io import damaged, jsonable, read_stored_json, read_stored_text, write_bytes_atomic
from engine.kronecker.spec import KronTrainSpec
from engine.kronecker.tasks import TASKS
from engine.png import png_bar_chart

TABLE_CSV, CURVES_CSV, SUMMARY_JSON, SPEC_JSON = "results.csv", "curves.csv", "summary.json", "spec.json"
CHECKPOINT = "checkpoint_{}.safetensors"
TABLE_COLUMNS = ("model", "parameters", "layer_applications", "sequential_steps", "width", "test_accuracy",
                 "final_train_loss", "train_time_s", "description")
CURVE_COLUMNS = ("model", "step", "epoch", "loss", "accuracy")


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def run_to_dir(spec: KronTrainSpec, out_dir: Path, progress=None, cancel=None, device=None) -> None:
    """Job kind ``kron_train``: train and compare, then write the table, the curves, a summary (with the learned
    edge weights), the spec and one checkpoint per model (its ``state_dict``; it loads into
    ``engine.kronecker.net.build_models(spec)[model]``)."""
    from safetensors.torch import save

    from engine.kronecker.train import train_compare

    out_dir = Path(out_dir)
    result = train_compare(spec, progress=progress, cancel=cancel, device=device)
    plan = result.models[spec.model_names()[0]].plan
    summary = {
        "task": spec.task, "metric": TASKS[spec.task].metric,
        "graph": {"nodes": plan.n, "edges": plan.edges, "streams": plan.streams,
                  "layer_applications": plan.applications, "layers": plan.layer_names,
                  "labels": ["".join(t) for t in plan.layers]},
        "table": result.table, "test_curves": result.test_curves, "edge_weights": result.edge_weights,
        "curves": result.curves,
        "checkpoints": {name: CHECKPOINT.format(name) for name in result.models},
    }
    for name, model in result.models.items():
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        data = save(tensors, metadata={"model": name, "config": json.dumps(model.config), "spec": spec.to_json()})
        write_bytes_atomic(out_dir / CHECKPOINT.format(name), data)
    rows = [p for name in result.curves for p in result.curves[name]]
    write_bytes_atomic(out_dir / TABLE_CSV, _csv(result.table, TABLE_COLUMNS))
    write_bytes_atomic(out_dir / CURVES_CSV, _csv(rows, CURVE_COLUMNS))
    # Not sorted: the models keep their training order (the table's, the curves', the edge weights').
    write_bytes_atomic(out_dir / SUMMARY_JSON, json.dumps(jsonable(summary), indent=1).encode())
    write_bytes_atomic(out_dir / SPEC_JSON, spec.to_json(indent=2).encode())


@dataclass(frozen=True)
class KronRun:
    """What a finished run shows: the comparison table, train and test curves, and learned edge weights.

    ``curves``/``test_curves`` map a model to its points (``{"model", "step", "epoch", "loss", ...}``);
    ``edge_weights`` maps a model to ``{"kind", "nodes", "rows", "cols", "weights"}``.
    """

    task: str
    metric: str
    table: list[dict[str, Any]]
    curves: dict[str, list[dict[str, Any]]]
    test_curves: dict[str, list[dict[str, Any]]]
    edge_weights: dict[str, dict[str, Any]]

    def edge_matrix(self, model: str) -> sp.csr_matrix:
        """The learned edge weights of ``model`` as a sparse (nodes x nodes) matrix on the graph's pattern."""
        e = self.edge_weights[model]
        n = int(e["nodes"])
        return sp.csr_matrix((np.asarray(e["weights"], float), (e["rows"], e["cols"])), shape=(n, n))

    def points(self, which: str = "curves") -> list[dict[str, Any]]:
        """Every model's points in one list (what a chart with one line per model reads)."""
        return [p for pts in getattr(self, which).values() for p in pts]


def _points_by_model(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(pts, list) and all(isinstance(p, dict) for p in pts) for pts in value.values())


def read(result_dir: Path) -> KronRun:
    """The run stored in ``result_dir``; :class:`~engine.errors.DamagedResult` naming ``summary.json`` when it
    is missing, unparsable, or its table, curves or edge weights are not what :func:`run_to_dir` writes."""
    path = Path(result_dir) / SUMMARY_JSON
    s = read_stored_json(path)
    run = KronRun(task=s.get("task", ""), metric=s.get("metric", "test accuracy"), table=s.get("table", []),
                  curves=s.get("curves", {}), test_curves=s.get("test_curves", {}),
                  edge_weights=s.get("edge_weights") or {})
    if not (isinstance(run.task, str) and isinstance(run.metric, str)):
        raise damaged(path, "its task or metric is not a name")
    if not (isinstance(run.table, list) and all(isinstance(r, dict) and isinstance(r.get("model"), str)
                                                and isinstance(r.get("test_accuracy"), (int, float, type(None)))
                                                for r in run.table)):
        raise damaged(path, "its table is not one row per model with a test accuracy")
    if not (_points_by_model(run.curves) and _points_by_model(run.test_curves)):
        raise damaged(path, "its curves are not lists of points per model")
    if not (isinstance(run.edge_weights, dict) and all(
            isinstance(e, dict) and {"nodes", "rows", "cols", "weights"} <= set(e) for e in run.edge_weights.values())):
        raise damaged(path, "its edge weights are not {nodes, rows, cols, weights} per model")
    return run


def read_spec(result_dir: Path) -> KronTrainSpec:
    """The run's spec; :class:`~engine.errors.DamagedResult` naming ``spec.json`` when it cannot be read back."""
    path = Path(result_dir) / SPEC_JSON
    text = read_stored_text(path)
    try:
        return KronTrainSpec.from_json(text)
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise damaged(path, f"not a Kronecker training spec ({str(exc)[:160]})") from None


def files(result_dir: Path) -> dict[str, tuple[bytes, str]]:
    """The run's small files for download: file name -> (bytes, MIME type)."""
    out = Path(result_dir)
    kinds = ((TABLE_CSV, "text/csv"), (CURVES_CSV, "text/csv"), (SUMMARY_JSON, "application/json"),
             (SPEC_JSON, "application/json"))
    return {name: ((out / name).read_bytes(), mime) for name, mime in kinds if (out / name).exists()}


def checkpoints(result_dir: Path) -> dict[str, tuple[str, Callable[[], bytes]]]:
    """Model name -> (checkpoint file name, a function reading its bytes): read only when downloaded."""
    prefix, suffix = CHECKPOINT.split("{}")
    return {p.name[len(prefix):-len(suffix)]: (p.name, p.read_bytes)
            for p in sorted(Path(result_dir).glob(CHECKPOINT.format("*")))}


def thumbnail(result_dir: Path) -> bytes | None:
    """Test accuracy per model as a small bar chart (None when the folder holds no finished run)."""
    try:
        run = read(result_dir)
    except DamagedResult:
        return None
    if not run.table:
        return None
    return png_bar_chart([r["model"] for r in run.table],
                         {"test accuracy": [float(r["test_accuracy"] or 0.0) for r in run.table]},
                         title=f"{run.task}: test accuracy", y_range=(0.0, 1.0), width=420, height=260,
                         value_format="{:.2f}")
