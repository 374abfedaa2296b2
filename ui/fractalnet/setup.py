"""The lab's setup as a link: every choice on the page lives in the URL, and ``?run=<id>`` opens a stored run.

The spec fields' link names come from their declarations (``batch``, ``warmup`` ... for old links); the page's
own choices (variant, custom columns/filters/dropout, built-in dataset or an upload's id) sit beside them. A link
is read once per session; after that the widgets own the values and every script run writes them back.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import streamlit as st

from cache import uploads
from engine.datasets import list_datasets
from engine.fractalnet.model import FractalNetConfig
from engine.fractalnet.train import TrainSpec
from engine.fractalnet.variants import OVERRIDABLE, VARIANTS, match_variant
from engine.specs import field_info, fields_of
from ui import state
from ui.jobs import linked_status
from ui.spec_form import spec_input

P = "fn_"  # prefix of this page's session-state keys
KIND = "fractalnet_train"
CUSTOM = "custom"
UPLOAD = "upload"
BUILTIN = list_datasets(needs_path=False)
MODEL_FIELDS = OVERRIDABLE  # join, drop_path, local_drop, global_ratio: offered beside any variant
TRAIN_FIELDS = ("optimizer", "lr", "momentum", "schedule", "warmup_epochs", "weight_decay", "epochs", "batch_size",
                "augment", "seed", "max_train")
PAGE_FIELDS = ("variant", "columns", "filters", "dropout", "dataset", "upload")
# The open run and the compare view: which runs, the x axis, TensorBoard's smoothing weight, a log loss axis.
VIEW_DEFAULTS = {"run": "", "compare": [], "xaxis": "step", "smooth": 0.6, "logy": False}
X_AXES = ("step", "epoch", "time")
MAX_SMOOTHING = 0.99


def as_text(value: Any) -> str:
    """A per-block value as the text box shows it: ``3``, ``32,64,96``, ``0.1``."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _model_setup(m: FractalNetConfig) -> dict[str, Any]:
    out = {"variant": match_variant(m, ignore=MODEL_FIELDS) or CUSTOM, "columns": as_text(m.columns),
           "filters": as_text(m.filters), "dropout": as_text(m.dropout)}
    out.update({k: getattr(m, k) for k in MODEL_FIELDS})
    return out


@lru_cache(maxsize=1)
def _defaults() -> tuple[tuple[str, Any], ...]:
    spec = TrainSpec()
    return tuple({**_model_setup(spec.model), "dataset": spec.dataset, "upload": "",
                  **{k: getattr(spec, k) for k in TRAIN_FIELDS}}.items())


def defaults() -> dict[str, Any]:
    """The page's setup before anyone changed it: the engine's own defaults (``small`` on digits)."""
    return dict(_defaults())


def setup_from_spec(spec: dict, errors: list[str] | None = None) -> dict[str, Any]:
    """The page's setup that reproduces a run's spec (for ``?run=`` links and "use this run's setup")."""
    out = _model_setup(FractalNetConfig.from_dict(spec.get("model", {})))
    dataset, path = spec.get("dataset", "digits"), spec.get("dataset_path")
    if dataset in BUILTIN and not path:
        out.update(dataset=dataset, upload="")
    else:
        out.update(dataset=UPLOAD, upload=uploads.id_of_path(path) or "")
    for name in TRAIN_FIELDS:
        if name in spec:
            try:
                out[name] = field_info(TrainSpec, name).check(spec[name])
            except ValueError as exc:  # an old run outside today's ranges: keep the default, say so
                if errors is not None:
                    errors.append(str(exc))
    return out


def _run_spec(run_id: str, errors: list[str]) -> dict | None:
    status, why = linked_status(run_id)
    if why is not None:
        errors.append(f"run: {why}")
    return status.spec if status is not None and status.kind == KIND and status.spec else None


def _from_link(params: dict[str, str], values: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    choices = {"variant": [*VARIANTS, CUSTOM], "dataset": [*BUILTIN, UPLOAD]}
    for k in PAGE_FIELDS:
        if k not in params:
            continue
        if k in choices and params[k] not in choices[k]:
            errors.append(f"{k}: {params[k]!r} is not one of {', '.join(choices[k])}")
        elif k == "upload" and params[k] and not uploads.is_id(params[k]):
            errors.append("upload: not an upload id")
        else:
            values[k] = params[k]
    if params.get("max_train") == "0":  # old links said 0 for "all"
        params["max_train"] = state.NONE_TOKEN
    model_skip = tuple(i.name for i in fields_of(FractalNetConfig) if i.name not in MODEL_FIELDS)
    train_skip = tuple(i.name for i in fields_of(TrainSpec) if i.name not in TRAIN_FIELDS)
    values, e1 = state.parse_spec_query(FractalNetConfig, params, values, skip=model_skip)
    values, e2 = state.parse_spec_query(TrainSpec, params, values, skip=train_skip)
    errors.extend(e1 + e2)
    return values


def _view_from_link(errors: list[str]) -> dict[str, Any]:
    view = state.read_query_params(VIEW_DEFAULTS, errors=errors)
    if view["xaxis"] not in X_AXES:
        errors.append(f"xaxis: {view['xaxis']!r} is not one of {', '.join(X_AXES)}")
        view["xaxis"] = VIEW_DEFAULTS["xaxis"]
    if view["smooth"] is None or not 0.0 <= view["smooth"] <= MAX_SMOOTHING:
        errors.append(f"smooth: must be in 0..{MAX_SMOOTHING}, got {view['smooth']!r}")
        view["smooth"] = VIEW_DEFAULTS["smooth"]
    return view


def init_state() -> None:
    """Fill the widgets' session state from the link, once per session."""
    if st.session_state.get(P + "ready"):
        return
    errors: list[str] = []
    params = {k: st.query_params[k] for k in st.query_params.keys()}
    values = defaults()
    run_id = params.get("run", "")
    if run_id and not set(params) & set(link(values)):
        spec = _run_spec(run_id, errors)
        if spec is not None:
            try:
                values.update(setup_from_spec(spec, errors))
            except (TypeError, ValueError) as exc:  # an old spec this page no longer reads: keep the defaults
                errors.append(f"run: its setup could not be restored ({exc})")
    values = _from_link(params, values, errors)
    extra = _view_from_link(errors)
    for k, v in {**values, **extra}.items():
        st.session_state[P + k] = v
    st.session_state[P + "link_errors"] = errors
    st.session_state[P + "ready"] = True


def get(name: str) -> Any:
    """A setup value; a widget not drawn in the last run loses its state, so fall back to the default."""
    key = P + name
    if key in st.session_state:
        return st.session_state[key]
    return VIEW_DEFAULTS[name] if name in VIEW_DEFAULTS else defaults()[name]


def ensure(name: str) -> str:
    """The widget key of ``name``, given its value in session state first (no widget is passed ``value=``)."""
    key = P + name
    if key not in st.session_state:
        st.session_state[key] = defaults()[name]
    return key


def ensure_view(name: str) -> str:
    """The widget key of a compare-view setting (``xaxis``, ``smooth``, ``logy``), its value set first."""
    key = P + name
    if key not in st.session_state:
        st.session_state[key] = VIEW_DEFAULTS[name]
    return key


def field_input(spec_cls: type, name: str, **kwargs: Any) -> Any:
    """The widget of a spec field, generated from its declaration, bound to this page's state."""
    return spec_input(spec_cls, name, key=ensure(name), **kwargs)


def apply_setup(spec: dict) -> None:
    """on_click: load a run's setup into the widgets (callbacks run before the widgets are drawn)."""
    for k, v in setup_from_spec(spec).items():
        st.session_state[P + k] = v


def open_run(run_id: str) -> None:
    st.session_state[P + "run"] = run_id


def link(values: dict[str, Any]) -> dict[str, str]:
    """The query parameters of a setup (one per page choice and per spec field)."""
    q = {k: state.encode_query_value(values[k]) for k in PAGE_FIELDS}
    if values["variant"] != CUSTOM:
        q.update(columns="", filters="", dropout="")
    q.update(state.spec_query(FractalNetConfig, {k: values[k] for k in MODEL_FIELDS}))
    q.update(state.spec_query(TrainSpec, {k: values[k] for k in TRAIN_FIELDS}))
    return q


def write_link() -> None:
    """Put the current setup (and the open run, the compared runs) into the URL; defaults are left out."""
    base = defaults()
    now = link({k: get(k) for k in base})
    default = link(base)
    view = {"xaxis": get("xaxis"), "smooth": round(float(get("smooth")), 2), "logy": bool(get("logy"))}
    now.update(run=get("run") or "", compare=state.encode_query_value(list(get("compare") or [])),
               **{k: state.encode_query_value(v) for k, v in view.items()})
    default.update(run="", compare="", **{k: state.encode_query_value(VIEW_DEFAULTS[k]) for k in view})
    state.write_query_params(now, defaults=default)


def link_warnings() -> None:
    for line in st.session_state.get(P + "link_errors") or []:
        st.warning(f"Ignored a link parameter — {line}")
