"""FractalNet lab: configure a FractalNet, train it as a background job with live curves, and see what each column
learned on its own (Larsson, Maire & Shakhnarovich, ICLR 2017).

The page is thin: it reads widgets, builds a :class:`engine.training.TrainSpec`, submits it as a
``fractalnet_train`` job, and draws what the job writes (its event log while it runs, its result folder when it
is done). The whole setup lives in the URL's query parameters, and ``?run=<job id>`` opens a run, so a
configuration or a result can be shared as a link and survives a reload. Uploaded datasets are checked by
``engine.data`` and kept under the store root (``uploads/<hash>/``) so the job's own process can read them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import runs
import ui
from cache import default_store
from engine import data as fdata
from engine.fractalnet import (
    JOINS,
    MAX_COLUMNS,
    VARIANTS,
    FractalNetConfig,
    block_structure,
    describe,
    variant_config,
)
from engine.training import (
    OPTIMIZERS,
    SCHEDULES,
    TrainSpec,
    load_checkpoint,
    predict_logits,
    read_checkpoint_config,
    read_metrics_csv,
    saliency_map,
    steps_per_epoch,
)

st.set_page_config(page_title="FractalNet lab · Fractal Lab", page_icon="🧱", layout="wide")

KIND = "fractalnet_train"
P = "fn_"  # prefix of this page's session-state keys
_D = TrainSpec()
BUILTIN = fdata.list_datasets(needs_path=False)
UPLOAD = "upload"
CUSTOM = "custom"

# Everything that defines a setup, with the defaults (= TrainSpec's defaults: `small` on digits). These are the
# URL's query parameters; a value equal to its default is left out of the link.
DEFAULTS: dict[str, Any] = {
    "variant": "small",
    "columns": "3",
    "filters": "32,64,96",
    "dropout": "0",
    "join": _D.model.join,
    "drop_path": _D.model.drop_path,
    "local_drop": _D.model.local_drop,
    "global_ratio": _D.model.global_ratio,
    "dataset": _D.dataset,
    "upload": "",
    "optimizer": _D.optimizer,
    "lr": _D.lr,
    "momentum": _D.momentum,
    "weight_decay": _D.weight_decay,
    "schedule": _D.schedule,
    "warmup": _D.warmup_epochs,
    "epochs": _D.epochs,
    "batch": _D.batch_size,
    "augment": _D.augment,
    "seed": _D.seed,
    "max_train": 0,
}
RUN_DEFAULTS: dict[str, Any] = {"run": "", "compare": []}
NUMBER_RANGES = {  # widget ranges; a hand-edited link is clamped into them
    "local_drop": (0.0, 0.95), "global_ratio": (0.0, 1.0), "lr": (1e-5, 10.0), "momentum": (0.0, 0.99),
    "weight_decay": (0.0, 0.1), "warmup": (0.0, 50.0), "epochs": (1, 500), "batch": (2, 4096),
    "seed": (0, 2**31 - 1), "max_train": (0, 10_000_000),
}


# ----------------------------------------------------------------------------------------------------------------
# State: query params <-> session state
# ----------------------------------------------------------------------------------------------------------------


def _csv(values) -> str:
    if isinstance(values, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
    return f"{values:g}" if isinstance(values, float) else str(values)


def _uploads_root() -> Path:
    return default_store().root / "uploads"


def _setup_from_spec(spec: dict) -> dict:
    """The page's setup that reproduces a run's spec (used by ``?run=`` links and "use this run's setup")."""
    m = spec.get("model", {})
    out: dict[str, Any] = {}
    cols, filters, dropout = m.get("columns", 3), m.get("filters", [32, 64, 96]), m.get("dropout", 0.0)
    out["variant"] = CUSTOM
    for name in VARIANTS:
        ref = variant_config(name).to_dict()
        if (ref["columns"], ref["filters"], ref["dropout"]) == (cols, list(filters), dropout):
            out["variant"] = name
            break
    out.update(columns=_csv(cols), filters=_csv(filters), dropout=_csv(dropout))
    for k in ("join", "drop_path", "local_drop", "global_ratio"):
        if k in m:
            out[k] = m[k]
    dataset, path = spec.get("dataset", "digits"), spec.get("dataset_path")
    if dataset in BUILTIN and not path:
        out["dataset"], out["upload"] = dataset, ""
    else:
        out["dataset"] = UPLOAD
        out["upload"] = Path(path).parent.name if path else ""
    mapping = {"optimizer": "optimizer", "lr": "lr", "momentum": "momentum", "weight_decay": "weight_decay",
               "schedule": "schedule", "warmup_epochs": "warmup", "epochs": "epochs", "batch_size": "batch",
               "augment": "augment", "seed": "seed"}
    for src, dst in mapping.items():
        if src in spec:
            out[dst] = spec[src]
    out["max_train"] = spec.get("max_train") or 0
    return out


def _sanitize(values: dict, errors: list[str]) -> dict:
    """Coerce a setup read from a link into what the widgets accept (unknown names fall back to defaults)."""
    v = dict(values)
    choices = {"variant": [*VARIANTS, CUSTOM], "join": list(JOINS), "dataset": [*BUILTIN, UPLOAD],
               "optimizer": list(OPTIMIZERS), "schedule": list(SCHEDULES)}
    for k, allowed in choices.items():
        if v.get(k) not in allowed:
            errors.append(f"{k}: {v.get(k)!r} is not one of {', '.join(map(str, allowed))}")
            v[k] = DEFAULTS[k]
    for k, (lo, hi) in NUMBER_RANGES.items():
        default = DEFAULTS[k]
        try:
            x = type(default)(v.get(k, default))
        except (TypeError, ValueError):
            x = default
        if not lo <= x <= hi:
            errors.append(f"{k}: {x} is outside {lo}..{hi}")
            x = min(max(x, type(default)(lo)), type(default)(hi))
        v[k] = x
    for k in ("columns", "filters", "dropout"):
        v[k] = str(v.get(k) or DEFAULTS[k])
    v["upload"] = str(v.get("upload") or "")
    if not re.fullmatch(r"[0-9a-f]{0,64}", v["upload"]):
        errors.append("upload: not an upload id")
        v["upload"] = ""
    for k in ("drop_path", "augment"):
        v[k] = bool(v.get(k, DEFAULTS[k]))
    return v


def _init_state() -> None:
    if st.session_state.get(P + "ready"):
        return
    errors: list[str] = []
    q = ui.read_query_params({**DEFAULTS, **RUN_DEFAULTS}, errors=errors)
    run_id = q.get("run") or ""
    if run_id and not any(k in st.query_params for k in DEFAULTS):
        try:
            status = runs.status(run_id)
        except ValueError:
            status = None
        if status is not None and status.kind == KIND and status.spec:
            try:
                q.update(_setup_from_spec(status.spec))
            except Exception as exc:  # an old spec this page no longer reads: keep the defaults, say why
                errors.append(f"run: its setup could not be restored ({exc})")
    q = _sanitize(q, errors)
    for k, val in q.items():
        st.session_state[P + k] = val
    st.session_state[P + "link_errors"] = errors
    st.session_state[P + "ready"] = True


def _get(k: str) -> Any:
    """A setup value; widgets not drawn in the last run lose their state, so fall back to the default."""
    return st.session_state.get(P + k, DEFAULTS.get(k, RUN_DEFAULTS.get(k)))


def _ensure(k: str) -> str:
    """Give widget ``k`` a value in session state before it is drawn (no `value=` argument is ever passed)."""
    key = P + k
    if key not in st.session_state:
        st.session_state[key] = DEFAULTS[k]
    return key


def _open_run(run_id: str) -> None:
    st.session_state[P + "run"] = run_id


def _apply_setup(spec: dict) -> None:
    """on_click: load a run's setup into the widgets (runs before the widgets are drawn)."""
    errors: list[str] = []
    for k, val in _sanitize({**DEFAULTS, **_setup_from_spec(spec)}, errors).items():
        st.session_state[P + k] = val


def _write_url() -> None:
    setup = {k: _get(k) for k in DEFAULTS}
    run = {"run": _get("run") or "", "compare": list(_get("compare") or [])}
    ui.write_query_params({**setup, **run}, defaults={**DEFAULTS, **RUN_DEFAULTS})


# ----------------------------------------------------------------------------------------------------------------
# Data (cached loads; uploads saved under the store root)
# ----------------------------------------------------------------------------------------------------------------


@st.cache_resource(max_entries=6, show_spinner="Loading the dataset…")
def _load_dataset(name: str, path: str | None, max_train: int | None) -> fdata.ImageDataset:
    return fdata.load_dataset(name, path=path, seed=0, max_train=max_train)


def _upload_meta(upload_id: str) -> dict | None:
    if not upload_id:
        return None
    d = _uploads_root() / upload_id
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    meta["path"] = str(d / meta["file"])
    return meta if Path(meta["path"]).is_file() else None


def _safe_name(name: str) -> str:
    base = Path(name).name or "upload"
    return re.sub(r"[^A-Za-z0-9._-]", "_", base)[:120]


def _check_upload(data: bytes, filename: str, fmt: str) -> tuple[str | None, str | None]:
    """Check an uploaded dataset with the engine's loaders; keep it (by content hash) when it is good."""
    try:
        ds = fdata.load_upload(data, filename, dataset=fmt, seed=0)
    except ValueError as exc:
        return None, str(exc)
    upload_id = hashlib.sha256(data).hexdigest()[:16]
    d = _uploads_root() / upload_id
    d.mkdir(parents=True, exist_ok=True)
    fname = _safe_name(filename)
    if not (d / fname).is_file():
        tmp = d / f".{fname}.tmp"
        tmp.write_bytes(data)
        tmp.replace(d / fname)
    meta = {"name": ds.name, "file": fname, "original_name": filename, "summary": ds.summary()}
    (d / "meta.json").write_text(json.dumps(meta, indent=2))
    return upload_id, None


def _dataset_choice() -> tuple[str | None, str | None]:
    """(loader name, path) of the chosen data, or (None, None) when an upload is still missing."""
    if _get("dataset") != UPLOAD:
        return _get("dataset"), None
    meta = _upload_meta(_get("upload"))
    if meta is None:
        return None, None
    return meta["name"], meta["path"]


# ----------------------------------------------------------------------------------------------------------------
# Model: config, block diagram, cost
# ----------------------------------------------------------------------------------------------------------------


def _parse_list(text: str, cast, what: str):
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ValueError(f"{what}: give a number, or one per block separated by commas")
    try:
        vals = tuple(cast(p) for p in parts)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a comma-separated list of numbers") from None
    return vals


def _model_config(num_classes: int, in_channels: int) -> FractalNetConfig:
    overrides = {"join": _get("join"), "drop_path": bool(_get("drop_path")),
                 "local_drop": float(_get("local_drop")), "global_ratio": float(_get("global_ratio"))}
    if _get("variant") != CUSTOM:
        return variant_config(_get("variant"), num_classes=num_classes, in_channels=in_channels, **overrides)
    filters = _parse_list(_get("filters"), int, "filters")
    cols = _parse_list(_get("columns"), int, "columns")
    drops = _parse_list(_get("dropout"), float, "dropout")
    return FractalNetConfig(
        columns=cols[0] if len(cols) == 1 else cols, filters=filters,
        dropout=drops[0] if len(drops) == 1 else drops, num_classes=num_classes, in_channels=in_channels,
        **overrides,
    )


COLUMN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def block_figure(s: dict) -> go.Figure:
    """A diagram of one fractal block drawn from ``block_structure`` (the layout the module itself runs).

    Columns left (shallowest) to right (deepest), depth downwards; each conv box sits between the depth
    positions it reads from and writes to, joins are bars across the columns they merge, and the last join
    comes after every column's 2x2 max-pooling.
    """
    C, depth = s["columns"], s["depth"]
    convs = {c["id"]: c for c in s["convs"]}
    join_at = {j["position"]: j for j in s["joins"]}
    last_y = depth + 0.7

    def period(c: int) -> int:
        return 2 ** (C - 1 - c)

    def conv_xy(cv: dict) -> tuple[float, float]:
        return cv["column"], cv["position"] - period(cv["column"]) / 2

    ex: list = []
    ey: list = []

    def edge(a, b):
        ex.extend([a[0], b[0], None])
        ey.extend([a[1], b[1], None])

    for cv in s["convs"]:
        x, y = conv_xy(cv)
        src = cv["input"]
        if src == "input":
            edge((x, 0), (x, y))
        elif src.startswith("join"):
            edge((x, int(src[4:])), (x, y))
        else:
            edge(conv_xy(convs[src]), (x, y))
        p = cv["position"]
        if p == depth:
            edge((x, y), (x, depth + 0.25))
            edge((x, depth + 0.25), (x, last_y))
        elif p in join_at and cv["column"] in join_at[p]["columns"]:
            edge((x, y), (x, p))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#9a9a9a", width=1.5), hoverinfo="skip",
                             showlegend=False))
    # block input bar
    fig.add_trace(go.Scatter(x=[-0.4, C - 0.6], y=[0, 0], mode="lines", line=dict(color="#444", width=4),
                             hoverinfo="skip", showlegend=False))
    fig.add_annotation(x=C - 0.55, y=0, text=f"input · {s['in_channels']} ch", showarrow=False, xanchor="left",
                       font=dict(size=11))
    # joins
    for j in s["joins"]:
        y = last_y if j["last"] else j["position"]
        xs = j["columns"]
        if len(xs) < 2 and not j["last"]:
            continue
        fig.add_trace(go.Scatter(
            x=[min(xs) - 0.3, max(xs) + 0.3], y=[y, y], mode="lines", line=dict(color="#111", width=6),
            hovertext=f"{j['id']}: mean of {len(j['inputs'])} input(s) {', '.join(j['inputs'])}", hoverinfo="text",
            showlegend=False,
        ))
        label = f"join ({len(xs)} inputs)" + (" → 2x2-pooled output" if j["last"] else "")
        fig.add_annotation(x=max(xs) + 0.35, y=y, text=label, showarrow=False, xanchor="left", font=dict(size=11))
    # pooling
    fig.add_trace(go.Scatter(
        x=list(range(C)), y=[depth + 0.25] * C, mode="markers", marker=dict(symbol="diamond", size=11,
                                                                            color="#555"),
        hovertext=["2x2 max-pool"] * C, hoverinfo="text", name="2x2 max-pool",
    ))
    # convs, one trace per column (the legend names columns)
    size = 24 if depth <= 8 else (16 if depth <= 16 else 10)
    for c in range(C):
        pts = [conv_xy(cv) for cv in s["convs"] if cv["column"] == c]
        ids = [cv["id"] for cv in s["convs"] if cv["column"] == c]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
            marker=dict(symbol="square", size=size, color=COLUMN_COLORS[c % len(COLUMN_COLORS)],
                        line=dict(color="white", width=1)),
            hovertext=[f"{i}: 3x3 conv-BN-ReLU → {s['out_channels']} ch" for i in ids], hoverinfo="text",
            name=f"column {c} ({2 ** c} conv{'s' if c else ''})",
        ))
    height = int(min(900, 170 + 62 * depth))
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="white",
        xaxis=dict(visible=False, range=[-0.7, C + 1.4]),
        yaxis=dict(visible=False, autorange="reversed"),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    return fig


def _conv_macs(cin: int, cout: int, hw: int) -> int:
    return cin * cout * 9 * hw


def forward_macs(config: FractalNetConfig, image_size: tuple[int, int], column: int | None = None) -> int:
    """Multiply-accumulates of one image's forward pass: the full net, or column ``column`` alone."""
    h, w = image_size
    total = 0
    for b in range(config.blocks):
        s = block_structure(config, b)
        hw = (h >> b) * (w >> b)
        keep = None if column is None else min(column, s["columns"] - 1)
        for cv in s["convs"]:
            if keep is not None and cv["column"] != keep:
                continue
            cin = s["in_channels"] if cv["input"] == "input" else s["out_channels"]
            total += _conv_macs(cin, s["out_channels"], hw)
    return total + config.filters[-1] * config.num_classes


@st.cache_data(max_entries=16, show_spinner="Timing a few training steps…")
def _measure_speed(config_json: str, shape: tuple[int, int, int], batch: int) -> float:
    """Training images/s of this model on this machine: three timed steps after one warm-up step."""
    import torch

    from engine.device import resolve_device
    from engine.fractalnet import FractalNet

    dev = resolve_device(None)
    cfg = FractalNetConfig.from_json(config_json)
    model = FractalNet(cfg).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((batch, *shape), generator=gen).to(dev)
    y = torch.randint(0, cfg.num_classes, (batch,), generator=gen).to(dev)
    times = []
    for i in range(4):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x, generator=gen), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return batch / float(np.median(times))


# ----------------------------------------------------------------------------------------------------------------
# Runs: events -> curves, results
# ----------------------------------------------------------------------------------------------------------------


def _curve_rows(rows: list[dict], metric: str, ncol: int) -> list[dict]:
    """Rename a run's step/epoch rows into one dict per point with readable legend names."""
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
            for k in range(ncol):
                if f"val_{metric}_col{k}" in r:
                    d[f"test: column {k}"] = r[f"val_{metric}_col{k}"]
            out.append(d)
    return out


def _curve_names(ncol: int) -> list[str]:
    return ["train (each step)", "train (epoch mean)", "test: full net", *[f"test: column {k}" for k in range(ncol)]]


def _ncol(spec: dict | None) -> int:
    m = (spec or {}).get("model", {})
    c = m.get("columns", 1)
    return max(c) if isinstance(c, list) else int(c)


def _prior_rows(spec: dict | None) -> list[dict]:
    """A resumed run's history before the checkpoint (its live events start after it)."""
    src = (spec or {}).get("resume_from")
    if not src:
        return []
    return read_metrics_csv(Path(src) / "metrics.csv")


def _live_rows(run_id: str, spec: dict | None) -> list[dict]:
    rows = [e for e in runs.events(run_id) if isinstance(e, dict)]
    prior = _prior_rows(spec)
    if prior and rows:
        first = min(int(r.get("step", 0)) for r in rows)
        prior = [r for r in prior if int(r.get("step", 0)) < first]
    return prior + rows


def _style_curves(fig: go.Figure, ncol: int) -> None:
    """Noisy per-step values thin and grey; the test curves of the full net and of each column stand out."""
    fig.update_traces(selector=dict(name="train (each step)"), line=dict(width=1, color="rgba(110,110,110,0.45)"))
    # Per-epoch lines get markers too: after the first epoch they are a single point, which a bare line hides.
    fig.update_traces(selector=dict(name="train (epoch mean)"), mode="lines+markers", marker=dict(size=5),
                      line=dict(width=2, color="#444", dash="dot"))
    fig.update_traces(selector=dict(name="test: full net"), mode="lines+markers", marker=dict(size=6),
                      line=dict(width=3, color="#111"))
    for k in range(ncol):
        fig.update_traces(selector=dict(name=f"test: column {k}"), mode="lines+markers", marker=dict(size=5),
                          line=dict(width=2, color=COLUMN_COLORS[k % len(COLUMN_COLORS)]))


def _curves_pair(rows: list[dict], ncol: int, key: str) -> None:
    left, right = st.columns(2)
    for col, metric, title in ((left, "loss", "Loss"), (right, "accuracy", "Accuracy")):
        pts = _curve_rows(rows, metric, ncol)
        with col:
            if not pts:
                st.caption(f"{title}: no points yet.")
                continue
            fig = ui.curves_figure(pts, x="epoch", y=_curve_names(ncol), title=title, y_title=metric, height=340)
            _style_curves(fig, ncol)
            st.plotly_chart(fig, key=f"{key}-{metric}", width="stretch")


def _curves_png(rows: list[dict], ncol: int, metric: str, title: str) -> bytes:
    pts = _curve_rows(rows, metric, ncol)
    series = {}
    for name in _curve_names(ncol):
        xs = [p["epoch"] for p in pts if name in p]
        if xs:
            series[name] = (xs, [p[name] for p in pts if name in p])
    return ui.png_line_chart(series, title=title, x_title="epoch", y_title=metric)


def _draw_live(status) -> None:
    """Inside the job fragment: speed, epoch and the live curves from the job's event log."""
    rows = _live_rows(status.id, status.spec)
    if status.state not in ui.LIVE_STATES and status.state != "cancelled" and status.state != "failed":
        return
    steps = [r for r in rows if r.get("kind") == "step"]
    epochs_done = [r for r in rows if r.get("kind") == "epoch"]
    total_epochs = (status.spec or {}).get("epochs", 0)
    c1, c2, c3, c4 = st.columns(4)
    speed = float(np.median([r["images_per_s"] for r in steps[-20:]])) if steps else None
    c1.metric("images/s", f"{speed:,.0f}" if speed else "—")
    c2.metric("epoch", f"{steps[-1]['epoch']:.2f} / {total_epochs}" if steps else f"0 / {total_epochs}")
    last_acc = epochs_done[-1].get("val_accuracy") if epochs_done else None
    c3.metric("test accuracy (full net)", f"{last_acc:.2%}" if last_acc is not None else "—")
    c4.metric("time left", ui.format_duration(status.eta_s) if status.state == "running" else "—")
    _curves_pair(rows, _ncol(status.spec), key=f"fn-live-{status.id}")


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint…")
def _checkpoint(path: str, mtime: float):
    return load_checkpoint(path, device="cpu")


def _heat_rgb(sal: np.ndarray) -> np.ndarray:
    s = np.clip(sal, 0, 1)
    rgb = np.stack([np.clip(1.6 * s, 0, 1), np.clip(1.6 * s - 0.5, 0, 1) ** 1.2, np.clip(0.5 - s, 0, 1) * 0.6], -1)
    return (rgb * 255).astype(np.uint8)


def _image_rgb(img: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) uint8."""
    a = np.transpose(np.repeat(img, 3, 0) if img.shape[0] == 1 else img, (1, 2, 0))
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def _enlarge(rgb: np.ndarray, target: int = 168) -> np.ndarray:
    k = max(1, target // max(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, k, 0), k, 1)


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _labelled_mosaic(grid: fdata.SampleGrid) -> np.ndarray:
    """The preview grid with each row's class name in a strip at its left."""
    from PIL import Image, ImageDraw

    h = grid.images.shape[-2]
    scale = max(1, 40 // h)
    mosaic = grid.mosaic(pad=2, scale=scale)
    strip = 110
    img = Image.new("RGB", (mosaic.shape[1] + strip, mosaic.shape[0]), (255, 255, 255))
    img.paste(Image.fromarray(mosaic), (strip, 0))
    draw = ImageDraw.Draw(img)
    font = ui._png_font(12)
    cell = h * scale + 2
    for i, name in enumerate(grid.classes):
        draw.text((strip - 6, 2 + i * cell + cell / 2), str(name)[:16], fill="black", font=font, anchor="rm")
    return np.asarray(img)


def _run_label(run) -> str:
    spec = run.spec or {}
    m = spec.get("model", {})
    variant = _setup_from_spec(spec).get("variant", "?") if spec else "?"
    ds = spec.get("dataset", "?")
    when = time.strftime("%m-%d %H:%M", time.localtime(run.created)) if run.created else ""
    return (f"{when} · {variant} · {ds} · {spec.get('epochs', '?')} ep · join {m.get('join', '?')} · "
            f"{run.state} · {run.id[-6:]}")


def _fractalnet_runs() -> list:
    try:
        return [r for r in runs.list_runs() if r.kind == KIND]
    except Exception:  # a store being cleared under us: show no runs rather than crash
        return []


# ----------------------------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------------------------

_init_state()

st.title("FractalNet lab")
st.caption(
    "FractalNet (Larsson, Maire & Shakhnarovich, ICLR 2017) grows an ultra-deep network from one expansion rule "
    "and trains it with **drop-path**, so that every column also works as a network on its own. Configure a "
    "model and data, train it in the background, and compare what each column learned with the full net."
)
for line in st.session_state.get(P + "link_errors") or []:
    st.warning(f"Ignored a link parameter — {line}")

# ---------------------------------------------------------------------------------------------------- Data
st.header("1 · Data")
dcol1, dcol2 = st.columns([1, 2])
with dcol1:
    options = [*BUILTIN, UPLOAD]
    st.selectbox(
        "Dataset", options, key=_ensure("dataset"),
        format_func=lambda k: fdata.DATASETS[k].title if k in fdata.DATASETS else "Upload a dataset file…",
    )
    if _get("dataset") == UPLOAD:
        fmt = st.selectbox(
            "Format", ["auto", *fdata.list_datasets(needs_path=True)], key=P + "upload_format",
            format_func=lambda k: "detect from the file" if k == "auto" else fdata.DATASETS[k].title,
        )
        up = st.file_uploader(
            "Dataset file (.zip, .npz, .tar.gz)", type=["zip", "npz", "gz", "tgz", "tar"], key=P + "upload_file",
            help="CIFAR python archive, MNIST IDX files in a zip/tar, a zip of class sub-folders of images, "
                 "or an .npz. Checked before use; nothing in it is executed.",
        )
        if up is not None:
            data = up.getvalue()
            token = (hashlib.sha256(data).hexdigest(), fmt)
            if st.session_state.get(P + "upload_checked") != token:
                upload_id, error = _check_upload(data, up.name, fmt)
                st.session_state[P + "upload_checked"] = token
                st.session_state[P + "upload_error"] = (up.name, error) if error else None
                if upload_id:
                    st.session_state[P + "upload"] = upload_id
            err = st.session_state.get(P + "upload_error")
            if err:
                st.error(f"Cannot use **{err[0]}**: {err[1]}")
        meta = _upload_meta(_get("upload"))
        if meta:
            st.success(f"Using **{meta['original_name']}** (read as {fdata.DATASETS[meta['name']].title}).")
        elif _get("upload"):
            st.warning("The uploaded file of this link is not on this machine: upload it again.")
    else:
        st.caption(fdata.DATASETS[_get("dataset")].description)

ds_name, ds_path = _dataset_choice()
ds = None
if ds_name is not None:
    try:
        ds = _load_dataset(ds_name, ds_path, None)
    except ValueError as exc:
        st.error(f"The dataset cannot be loaded: {exc}")
with dcol2:
    if ds is None:
        st.info("Choose a built-in dataset or upload a file to see its samples.")
    else:
        st.markdown(
            f"**{len(ds.x_train):,}** training and **{len(ds.x_test):,}** test images · "
            f"{ds.image_size[0]}x{ds.image_size[1]} · {ds.in_channels} channel(s) · {ds.num_classes} classes · "
            f"augmentation: pad-crop {ds.augmentation.pad_crop} px"
            + (", horizontal flips" if ds.augmentation.hflip else ", no flips")
        )
        grid = fdata.sample_grid(ds, per_class=10, max_classes=12)
        st.image(_labelled_mosaic(grid), caption="Random training samples, one row per class"
                 + (f" (first 12 of {ds.num_classes} classes)" if ds.num_classes > 12 else ""))

# --------------------------------------------------------------------------------------------------- Model
st.header("2 · Model")
mcol1, mcol2 = st.columns([1, 2])
config: FractalNetConfig | None = None
with mcol1:
    st.selectbox(
        "Variant", [*VARIANTS, CUSTOM], key=_ensure("variant"),
        format_func=lambda k: f"{k} — {VARIANTS[k].description}" if k in VARIANTS else "custom — your own C, B, "
                                                                                      "filters",
    )
    if _get("variant") == CUSTOM:
        st.text_input("Columns C (one, or one per block)", key=_ensure("columns"),
                      help=f"1..{MAX_COLUMNS}; a block with C columns has 2^C - 1 convs")
        st.text_input("Filters per block (the number of blocks B)", key=_ensure("filters"))
        st.text_input("Dropout (one rate, or one per block)", key=_ensure("dropout"))
    st.radio("Join", list(JOINS), key=_ensure("join"), horizontal=True, help=" · ".join(
        f"{k}: {v}" for k, v in JOINS.items()))
    st.checkbox("Drop-path", key=_ensure("drop_path"),
                help="Each mini-batch trains a random sub-network: local (drop join inputs) or global (one column)")
    dp1, dp2 = st.columns(2)
    dp1.number_input("Local drop rate", *NUMBER_RANGES["local_drop"], step=0.05, key=_ensure("local_drop"),
                     disabled=not _get("drop_path"))
    dp2.number_input("Global share", *NUMBER_RANGES["global_ratio"], step=0.1, key=_ensure("global_ratio"),
                     disabled=not _get("drop_path"), help="Share of mini-batches that keep a single column")
    try:
        config = _model_config(ds.num_classes if ds else 10, ds.in_channels if ds else 3)
    except ValueError as exc:
        st.error(f"Model: {exc}")
    if config is not None:
        info = describe(config)
        st.markdown(
            f"**{info['parameters']:,}** parameters · B = {info['blocks']} blocks · "
            f"convs per block {', '.join(map(str, info['convs_per_block']))} · needs images ≥ "
            f"{info['min_input_size']}x{info['min_input_size']}"
        )
        st.dataframe(
            {"column": [f"column {k}" for k in range(info["columns"])],
             "depth (convs)": info["column_depths"],
             "parameters alone": info["column_parameters"]},
            hide_index=True, width="stretch",
        )
        if ds is not None and min(ds.image_size) < config.min_input_size:
            st.error(
                f"Model: {ds.image_size[0]}x{ds.image_size[1]} images are too small for {config.blocks} blocks of "
                f"2x2 pooling (need {config.min_input_size}x{config.min_input_size}); pick fewer blocks."
            )
            config = None
with mcol2:
    if config is not None:
        if config.blocks > 1 and len(set(config.block_columns)) > 1:
            which = st.select_slider("Block to draw", list(range(config.blocks)), key=P + "diagram_block")
        else:
            which = 0
        structure = block_structure(config, which)
        st.markdown(
            f"**One fractal block** (block {which}: C = {structure['columns']}, {structure['conv_count']} convs, "
            f"deepest path {structure['deepest_path']} convs, {structure['in_channels']} → "
            f"{structure['out_channels']} channels) — drawn from the model's own layout."
        )
        st.plotly_chart(block_figure(structure), key=P + "block_fig", width="stretch")

# ------------------------------------------------------------------------------------------------ Training
st.header("3 · Training")
t1, t2, t3, t4 = st.columns(4)
t1.selectbox("Optimiser", list(OPTIMIZERS), key=_ensure("optimizer"),
             help=" · ".join(f"{k}: {v}" for k, v in OPTIMIZERS.items()))
t1.number_input("Learning rate", *NUMBER_RANGES["lr"], format="%g", key=_ensure("lr"))
t1.number_input("Momentum (β1 for AdamW)", *NUMBER_RANGES["momentum"], step=0.05, key=_ensure("momentum"))
t2.selectbox("Schedule", list(SCHEDULES), key=_ensure("schedule"),
             help=" · ".join(f"{k}: {v}" for k, v in SCHEDULES.items()))
t2.number_input("Warm-up epochs", *NUMBER_RANGES["warmup"], step=0.5, key=_ensure("warmup"))
t2.number_input("Weight decay", *NUMBER_RANGES["weight_decay"], format="%g", key=_ensure("weight_decay"))
t3.number_input("Epochs", *NUMBER_RANGES["epochs"], step=1, key=_ensure("epochs"))
t3.number_input("Batch size", *NUMBER_RANGES["batch"], step=8, key=_ensure("batch"))
t3.checkbox("Augment (the dataset's default)", key=_ensure("augment"))
t4.number_input("Seed", *NUMBER_RANGES["seed"], step=1, key=_ensure("seed"))
t4.number_input("Use at most N training images (0 = all)", *NUMBER_RANGES["max_train"], step=100,
                key=_ensure("max_train"))

spec: TrainSpec | None = None
if config is not None and ds is not None:
    try:
        spec = TrainSpec(
            model=config, dataset=ds_name, dataset_path=ds_path, epochs=int(_get("epochs")),
            batch_size=int(_get("batch")), optimizer=_get("optimizer"), lr=float(_get("lr")),
            momentum=float(_get("momentum")), weight_decay=float(_get("weight_decay")), schedule=_get("schedule"),
            warmup_epochs=min(float(_get("warmup")), float(_get("epochs"))), augment=bool(_get("augment")),
            seed=int(_get("seed")), max_train=int(_get("max_train")) or None,
        )
    except ValueError as exc:
        st.error(f"Training setup: {exc}")

if spec is not None:
    n_train = min(len(ds.x_train), spec.max_train or len(ds.x_train))
    per_epoch = steps_per_epoch(n_train, spec.batch_size)
    macs = forward_macs(config, ds.image_size)
    col_macs = [forward_macs(config, ds.image_size, k) for k in range(config.max_columns)]
    train_flop = 3 * 2 * macs * n_train * spec.epochs  # forward + backward (~2x forward), all paths: an upper bound
    eval_flop = 2 * (macs + sum(col_macs)) * len(ds.x_test) * spec.epochs
    cost = st.container(border=True)
    with cost:
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("forward pass / image", f"{2 * macs / 1e6:,.2f} MFLOP")
        c2.metric("optimiser steps", f"{per_epoch * spec.epochs:,}", help=f"{per_epoch} per epoch")
        c3.metric("training compute", f"{(train_flop + eval_flop) / 1e12:,.3f} TFLOP",
                  help="Training at ~3x the forward cost with every path (drop-path computes less), plus each "
                       "epoch's test pass of the full net and every column alone")
        measured = st.session_state.get(P + "speed", {}).get(config.to_json() + str(ds.image_size) + str(spec.batch_size))
        if measured:
            est = n_train * spec.epochs / measured
            c4.metric("estimated time", ui.format_duration(est), help=f"measured {measured:,.0f} training images/s "
                      "here (evaluation adds a little)")
        else:
            c4.metric("estimated time", "—")
            if c4.button("⏱ Measure speed", key=P + "measure", help="Time a few training steps of this model"):
                try:
                    speed = _measure_speed(config.to_json(), (ds.in_channels, *ds.image_size),
                                           min(spec.batch_size, 64))
                except Exception as exc:  # noqa: BLE001 - e.g. out of memory for a huge model: say so, keep going
                    st.error(f"Could not time the model: {exc}")
                else:
                    st.session_state.setdefault(P + "speed", {})[
                        config.to_json() + str(ds.image_size) + str(spec.batch_size)] = speed
                    st.rerun()

bcol1, bcol2, _ = st.columns([1, 1, 3])
if bcol1.button("▶ Train", key=P + "train", type="primary", disabled=spec is None, width="stretch"):
    run_id = runs.submit(KIND, spec)
    _open_run(run_id)

# --------------------------------------------------------------------------------------------------- Runs
st.header("4 · Run")
all_runs = _fractalnet_runs()
run_ids = [r.id for r in all_runs]
labels = {r.id: _run_label(r) for r in all_runs}
current = _get("run") or ""
if run_ids:

    def _on_pick() -> None:
        if st.session_state.get(P + "open_pick"):
            _open_run(st.session_state[P + "open_pick"])

    st.selectbox("Open an earlier run", ["", *run_ids], key=P + "open_pick", on_change=_on_pick,
                 format_func=lambda k: labels.get(k, "— pick a run —"))

run_status = None
if current:
    try:
        run_status = runs.status(current)
    except ValueError:
        run_status = None
    if run_status is None or run_status.kind != KIND:
        st.warning(f"No FractalNet run `{current}` here (deleted, or a link from another machine).")
        run_status = None
if run_status is None and not current:
    st.info("Press **Train** to start a run; it trains in the background, so you can reload or leave the page.")

if run_status is not None:
    rspec = run_status.spec or {}
    rsetup = _setup_from_spec(rspec) if rspec else {}
    st.markdown(
        f"Run `{run_status.id}` · **{rsetup.get('variant', '?')}** on **{rspec.get('dataset', '?')}** · "
        f"{rspec.get('epochs', '?')} epochs · batch {rspec.get('batch_size', '?')} · {rspec.get('optimizer', '?')} "
        f"lr {rspec.get('lr', '?')} · join {rspec.get('model', {}).get('join', '?')}"
        + (" · resumed from a checkpoint" if rspec.get("resume_from") else "")
    )
    st.button("↺ Use this run's setup above", key=P + "use_setup", on_click=_apply_setup, args=(rspec,))
    ui.live_job_fragment(run_status.id, key="fn-job", interval=1.0, extra=_draw_live,
                         title=None)
    run_status = runs.status(run_status.id) or run_status

    if run_status.state in ("cancelled", "failed"):
        partial = runs.partial_dir(run_status.id)
        ck_meta = None
        if partial is not None and (partial / "trainer_state.safetensors").is_file():
            try:
                ck_meta = read_checkpoint_config(partial)
            except ValueError:
                ck_meta = None
        if ck_meta is not None:
            st.info(f"A checkpoint was kept at epoch {ck_meta.get('epoch', '?')}, step {ck_meta.get('step', '?')}.")

            def _resume(spec_dict: dict = rspec, src: Path = partial) -> None:
                resumed = dataclasses.replace(TrainSpec.from_dict(spec_dict), resume_from=str(src))
                _open_run(runs.submit(KIND, resumed))

            st.button("⏯ Resume from the last checkpoint", key=P + "resume", on_click=_resume, type="primary")
        else:
            st.caption("No checkpoint was kept (the run stopped before its first step); train again to restart.")

    if run_status.state == "done":
        rd = runs.result_dir(run_status.id)
        if rd is None:
            st.warning("This run's result is no longer in the store.")
        else:
            summary = json.loads((rd / "summary.json").read_text())
            rows = read_metrics_csv(rd / "metrics.csv")
            ncol = len(summary["accuracy"]["columns"])
            classes = summary.get("classes") or [str(i) for i in range(len(summary["confusion_matrix"]))]
            st.subheader("Results")
            acc = summary["accuracy"]
            deepest = acc["columns"][-1]
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("test accuracy, full net", f"{acc['full']:.2%}")
            m2.metric("deepest column alone", f"{deepest:.2%}", delta=f"{100 * (deepest - acc['full']):+.2f} pts",
                      delta_color="off")
            m3.metric("training speed", f"{summary['timings']['train_images_per_s']:,.0f} images/s")
            m4.metric("training time", ui.format_duration(summary["timings"]["train_s"]))
            _curves_pair(rows, ncol, key=f"fn-final-{run_status.id}")

            r1, r2 = st.columns(2)
            depths = summary.get("column_depths") or [None] * ncol
            col_names = [f"column {k}" for k in range(ncol)] + ["full net"]
            accs = [*acc["columns"], acc["full"]]
            with r1:
                fig = go.Figure(go.Bar(
                    x=col_names, y=accs, text=[f"{a:.2%}" for a in accs], textposition="outside",
                    marker_color=[*COLUMN_COLORS[:ncol], "#111"],
                    hovertext=[f"depth {d} convs" for d in depths] + ["all columns joined"], hoverinfo="text+y",
                ))
                lo = max(0.0, min(accs) - 0.1)
                fig.update_layout(title="Each column alone vs. the full net (test accuracy)", height=360,
                                  yaxis=dict(range=[lo, 1.0], tickformat=".0%"), margin=dict(l=40, r=10, t=50, b=40))
                st.plotly_chart(fig, key=P + "columns_fig", width="stretch")
                st.caption(
                    "The paper's claim: with drop-path, every column is a working network on its own, and the "
                    "deepest column alone nearly matches the full net. Depths: "
                    + ", ".join(f"column {k}: {d} convs" for k, d in enumerate(depths))
                )
            with r2:
                cm = np.asarray(summary["confusion_matrix"])
                fig = go.Figure(go.Heatmap(z=cm, x=classes, y=classes, colorscale="Blues", text=cm,
                                           texttemplate="%{text}" if len(classes) <= 20 else None,
                                           hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
                fig.update_layout(title="Confusion matrix (test split, full net)", height=360,
                                  xaxis=dict(title="predicted", type="category"),
                                  yaxis=dict(title="true", type="category", autorange="reversed"),
                                  margin=dict(l=40, r=10, t=50, b=40))
                st.plotly_chart(fig, key=P + "confusion_fig", width="stretch")

            jw = summary.get("join_weights")
            if jw:
                st.markdown("**Learned join weights** (softmax over each join's inputs with every path active; "
                            "equal weights are the paper's mean)")
                table = {"block": [], "join at depth": [], "columns": [], "weights": []}
                for b, joins_b in enumerate(jw):
                    for j in joins_b:
                        table["block"].append(b)
                        table["join at depth"].append(j["position"])
                        table["columns"].append(", ".join(map(str, j["columns"])))
                        table["weights"].append(", ".join(f"{w:.3f}" for w in j["weights"]))
                st.dataframe(table, hide_index=True, width="stretch")

            # Saliency and prediction need the model and the test images.
            ck = None
            try:
                ck = _checkpoint(str(rd), (rd / "model.safetensors").stat().st_mtime)
            except (ValueError, OSError) as exc:
                st.error(f"The checkpoint cannot be loaded: {exc}")
            rds = None
            try:
                rds = _load_dataset(rspec.get("dataset", "digits"), rspec.get("dataset_path"), None)
            except ValueError as exc:
                st.warning(f"The run's dataset is not available here ({exc}); no saliency map.")
            sal_png = None
            if ck is not None:
                s1, s2 = st.columns(2)
                with s1:
                    st.markdown("**Saliency map** — |∂ logit / ∂ pixel| for a test image")
                    if rds is not None and len(rds.x_test):
                        a, b = st.columns(2)
                        idx = a.number_input("Test image #", 0, len(rds.x_test) - 1, 0, key=P + "sal_index")
                        who = b.selectbox("Network", ["full net", *[f"column {k}" for k in range(ncol)]],
                                          key=P + "sal_column")
                        column = None if who == "full net" else int(who.split()[-1])
                        img = rds.x_test[int(idx)]
                        sal = saliency_map(ck.model, img, column=column, device="cpu")
                        pic, heat = _enlarge(_image_rgb(img)), _enlarge(_heat_rgb(sal["saliency"]))
                        q1, q2 = st.columns(2)
                        q1.image(pic, caption=f"true: {rds.classes[int(rds.y_test[int(idx)])]}")
                        q2.image(heat, caption=f"predicted: {ck.classes[sal['predicted']]} "
                                               f"({float(sal['probabilities'][sal['predicted']]):.1%})")
                        gap = np.full((pic.shape[0], 8, 3), 255, np.uint8)
                        sal_png = _png(np.concatenate([pic, gap, heat], axis=1))
                with s2:
                    st.markdown("**Predict on your own image**")
                    pic_up = st.file_uploader("An image (png, jpg, …)", type=["png", "jpg", "jpeg", "bmp", "gif",
                                                                            "webp"], key=P + "predict_file")
                    if pic_up is not None:
                        try:
                            arr = fdata.image_from_bytes(pic_up.getvalue(), pic_up.name, ck.config.in_channels,
                                                         ck.image_size)
                            probs = {}
                            for name, column in [("full net", None), *[(f"column {k}", k) for k in range(ncol)]]:
                                logits = predict_logits(ck.model, arr[None], column=column)
                                probs[name] = logits.softmax(1)[0].numpy()
                            full = probs["full net"]
                            top = np.argsort(-full)[:5]
                            st.image(_enlarge(_image_rgb(arr), 112), caption=f"as the model sees it "
                                     f"({ck.image_size[0]}x{ck.image_size[1]})")
                            st.markdown(f"Prediction: **{ck.classes[top[0]]}** ({full[top[0]]:.1%})")
                            st.dataframe(
                                {"class": [ck.classes[i] for i in top],
                                 **{name: [f"{p[i]:.1%}" for i in top] for name, p in probs.items()}},
                                hide_index=True, width="stretch",
                            )
                        except ValueError as exc:
                            st.error(f"Cannot predict on **{pic_up.name}**: {exc}")

            st.markdown("**Downloads**")
            files = {
                "model.safetensors": ((rd / "model.safetensors").read_bytes(), "application/octet-stream"),
                "config.json": ((rd / "config.json").read_bytes(), "application/json"),
                "metrics.csv": ((rd / "metrics.csv").read_bytes(), "text/csv"),
                "summary.json": ((rd / "summary.json").read_bytes(), "application/json"),
            }
            ui.download_row(files, key=f"fn-dl-{run_status.id}")
            figures = {
                "loss.png": (_curves_png(rows, ncol, "loss", "Loss"), "image/png"),
                "accuracy.png": (_curves_png(rows, ncol, "accuracy", "Accuracy"), "image/png"),
                "columns.png": (ui.png_bar_chart(col_names, {"test accuracy": accs}, title="Each column alone vs. "
                                                 "the full net", y_title="test accuracy", y_range=(0.0, 1.0)),
                                "image/png"),
                "confusion.png": (ui.png_heatmap(np.asarray(summary["confusion_matrix"]), row_labels=classes,
                                                 col_labels=classes, title="Confusion matrix (test split)",
                                                 x_title="predicted", y_title="true"), "image/png"),
            }
            if sal_png is not None:
                figures["saliency.png"] = (sal_png, "image/png")
            ui.download_row(figures, key=f"fn-dlfig-{run_status.id}")

# ---------------------------------------------------------------------------------------------- Compare
st.header("5 · Compare runs")
finished = [r for r in all_runs if r.state == "done" and runs.result_dir(r.id) is not None]
if len(finished) < 2:
    st.caption("Finish two or more runs to overlay their curves and per-column accuracies here.")
else:
    fin_ids = [r.id for r in finished]
    fin_labels = {r.id: _run_label(r) for r in finished}
    key = P + "compare"
    st.session_state[key] = [k for k in (st.session_state.get(key) or []) if k in fin_ids]
    chosen = st.multiselect("Runs", fin_ids, key=key, format_func=lambda k: fin_labels[k])
    if len(chosen) >= 2:
        fig_acc = go.Figure()
        fig_col = go.Figure()
        bar_groups: list[str] = []
        bar_series: dict[str, list] = {}
        line_series: dict[str, tuple] = {}
        results = []
        for rid in chosen:
            rdir = runs.result_dir(rid)
            summ = json.loads((rdir / "summary.json").read_text())
            rws = [r for r in read_metrics_csv(rdir / "metrics.csv") if r.get("kind") == "epoch"]
            results.append((rid, summ, rws))
            n = len(summ["accuracy"]["columns"])
            bar_groups = max(bar_groups, [f"column {k}" for k in range(n)], key=len)
        bar_groups = [*bar_groups, "full net"]
        for rid, summ, rws in results:
            name = fin_labels[rid]
            short = f"{rid[-6:]}"
            xs = [r["epoch"] for r in rws]
            ys = [r.get("val_accuracy") for r in rws]
            fig_acc.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name))
            line_series[short] = (xs, ys)
            cols = summ["accuracy"]["columns"]
            vals = [cols[k] if k < len(cols) else None for k in range(len(bar_groups) - 1)] + [
                summ["accuracy"]["full"]]
            fig_col.add_trace(go.Bar(x=bar_groups, y=vals, name=name))
            bar_series[short] = vals
        fig_acc.update_layout(title="Test accuracy of the full net per epoch", height=360, xaxis_title="epoch",
                              yaxis=dict(tickformat=".0%"), legend=dict(orientation="h", y=-0.25))
        fig_col.update_layout(title="Final test accuracy: each column alone and the full net", height=360,
                              barmode="group", yaxis=dict(tickformat=".0%"), legend=dict(orientation="h", y=-0.25))
        k1, k2 = st.columns(2)
        k1.plotly_chart(fig_acc, key=P + "cmp_acc", width="stretch")
        k2.plotly_chart(fig_col, key=P + "cmp_col", width="stretch")
        ui.download_row({
            "compare_accuracy.png": (ui.png_line_chart(line_series, title="Test accuracy (full net)",
                                                       x_title="epoch", y_title="accuracy"), "image/png"),
            "compare_columns.png": (ui.png_bar_chart(bar_groups, bar_series, title="Final test accuracy",
                                                     y_title="accuracy", y_range=(0.0, 1.0)), "image/png"),
        }, key=P + "cmp-dl")
    else:
        st.caption("Pick two or more runs.")

_write_url()
with st.sidebar:
    ui.copy_link(label="Link to this setup")
