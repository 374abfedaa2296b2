"""A run's measurements as rows: one per logged step and one per epoch, written to ``metrics.csv`` and sent live
as job events; and the curves drawn from them (the same rows make the live chart and the downloaded PNG).

Step rows: ``kind="step"``, epoch (fractional), step, loss, accuracy, lr, images_per_s, drop. Epoch rows:
``kind="epoch"``, train_loss/train_accuracy and ``val_{loss,accuracy}`` of the full net and ``..._col{k}`` of
each column alone.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path
from typing import Any, Iterable

from engine.io import damaged, read_stored_text, write_bytes_atomic
from engine.png import png_line_chart

METRICS_FILE = "metrics.csv"


def _metric_columns(rows: list[dict]) -> list[str]:
    first = ["kind", "epoch", "step"]
    seen: list[str] = []
    for r in rows:
        for k in r:
            if k not in first and k not in seen:
                seen.append(k)
    return first + seen


def metrics_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_metric_columns(rows), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def read_metrics_csv(path: str | Path) -> list[dict]:
    """Rows of a ``metrics.csv`` with numbers parsed and blanks dropped (what ``train`` appended); [] when
    there is no file. A file that is not such a table (binary, a cell that is not a number, a row longer than
    the header) raises :class:`~engine.errors.DamagedResult` naming it."""
    p = Path(path)
    if not p.is_file():
        return []
    text = read_stored_text(p)
    rows = []
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if text.strip() and "kind" not in (reader.fieldnames or []):
            raise ValueError("no 'kind' column in its header")
        for raw in reader:
            row: dict[str, Any] = {}
            for k, v in raw.items():
                if k is None:
                    raise ValueError(f"line {reader.line_num} has more cells than the header")
                if v is None or v == "":
                    continue
                if k in ("kind", "drop"):
                    row[k] = v
                elif k == "step":
                    row[k] = int(float(v))
                else:
                    row[k] = float(v)
            rows.append(row)
    except (csv.Error, ValueError, OverflowError) as exc:
        raise damaged(p, f"not a metrics table ({str(exc)[:160]})") from None
    return rows


def write_metrics(directory: str | Path, rows: list[dict]) -> None:
    write_bytes_atomic(Path(directory) / METRICS_FILE, metrics_csv(rows).encode(), fsync=False)


def read_metrics(directory: str | Path) -> list[dict]:
    """The rows of ``directory``'s metrics file ([] when it has none)."""
    return read_metrics_csv(Path(directory) / METRICS_FILE)


def join_history(prior: list[dict], rows: Iterable[Any]) -> list[dict]:
    """A resumed run's rows from before its checkpoint (``prior``) followed by its own (job events)."""
    rows = [r for r in rows if isinstance(r, dict)]
    if prior and rows:
        first = min(int(r.get("step", 0)) for r in rows)
        prior = [r for r in prior if int(r.get("step", 0)) < first]
    return prior + rows


def progress_of(rows: list[dict]) -> dict:
    """What a live panel shows: median images/s of the last 20 steps, the current epoch, the last test accuracy."""
    steps = [r for r in rows if r.get("kind") == "step"]
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    return {
        "images_per_s": statistics.median(r["images_per_s"] for r in steps[-20:]) if steps else None,
        "epoch": steps[-1]["epoch"] if steps else None,
        "val_accuracy": epochs[-1].get("val_accuracy") if epochs else None,
    }


def curve_names(columns: int) -> list[str]:
    """The legend names of a loss or accuracy chart, in drawing order."""
    return ["train (each step)", "train (epoch mean)", "test: full net", *[f"test: column {k}" for k in range(columns)]]


def curve_points(rows: list[dict], metric: str, columns: int) -> list[dict]:
    """One dict per point (``epoch`` and the :func:`curve_names` it has) for ``metric`` = "loss" or "accuracy"."""
    out = []
    for r in rows:
        if not isinstance(r, dict) or "epoch" not in r:
            continue
        if r.get("kind") == "step" and metric in r:
            out.append({"epoch": r["epoch"], "train (each step)": r[metric]})
        elif r.get("kind") == "epoch":
            d = {"epoch": r["epoch"]}
            if f"train_{metric}" in r:
                d["train (epoch mean)"] = r[f"train_{metric}"]
            if f"val_{metric}" in r:
                d["test: full net"] = r[f"val_{metric}"]
            for k in range(columns):
                if f"val_{metric}_col{k}" in r:
                    d[f"test: column {k}"] = r[f"val_{metric}_col{k}"]
            out.append(d)
    return out


def curves_png(rows: list[dict], columns: int, metric: str, title: str, **kwargs: Any) -> bytes:
    """The chart of :func:`curve_points` as a PNG (``kwargs`` go to :func:`engine.png.png_line_chart`)."""
    pts = curve_points(rows, metric, columns)
    series = {}
    for name in curve_names(columns):
        xs = [p["epoch"] for p in pts if name in p]
        if xs:
            series[name] = (xs, [p[name] for p in pts if name in p])
    return png_line_chart(series, title=title, x_title="epoch", y_title=metric, **kwargs)
