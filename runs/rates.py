"""This machine's measured speed, so cost estimates follow the hardware the user has instead of ours.

After every grid job the worker reads the result's ``stats.json`` and keeps, in ``rates.json`` under the store root,
three numbers per job, per device type and dtype and again per experiment (:func:`kind_of`: activation, phase
space, minibatch or not), the last :data:`HISTORY` jobs each:

- ``rate``: the speed, in the cost model's reference units (network-steps of the reference network per second:
  ``network_steps * cost_per_step(spec) / REF_COST / (elapsed_s - overhead_s)``), counting the steps actually run,
  so a width-8 grid calibrates a width-16 one and the speed says nothing about how many networks diverged;
- ``stepped``: the share of the grid's network-steps actually run (``network_steps / network_steps_full``): how
  early its diverged networks stopped, which differs between experiments several-fold (ReLU 0.34, tanh 0.66);
- ``overhead``: the job's time outside training (store lookup, kernel load, files written; about a second whatever
  the size), which a speed must not spread over the pixels: a small grid would make every larger one look slow.

:func:`calibrated_seconds` is ``overhead + work * stepped / rate`` from the medians: the experiment's own numbers
once one of its grids finished here, else the dtype's speed and the preset's built-in share
(``Preset.stepped``). A grid computed on a Dask cluster says nothing about this machine and is not recorded.

    runs.rates.measured("float64")            # e.g. 231000.0, or None before the first grid finished
    runs.rates.stepped("float64", kind="relu/lr_vs_lr")   # e.g. 0.34: ReLU grids stop early
    runs.rates.calibrated_seconds(spec)       # the estimate from what was measured here (the constants before that)
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cache import Store, exclusive_lock
from engine.io import write_json_atomic
from runs import records

FILE = "rates.json"
LOCK = ".rates.lock"
HISTORY = 20  # runs kept per (device type, dtype): the median follows a machine that got faster or busier
VERSION = 2  # 2: a rate counts the steps actually run, beside their share; version-1 rates are not read
LOCAL = (None, "", "local")  # stats["scheduler"] values that mean: computed on this machine


def _store(store: Store | None) -> Store:
    return store if store is not None else records.store()


def _locked(st: Store):
    return exclusive_lock(st.root / LOCK)


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def device_type(device: Any) -> str:
    """``"cpu"``, ``"cuda"``, … from a device name such as ``"cuda:0"`` (``"cpu"`` when there is none)."""
    name = str(device or "cpu").split(":", 1)[0].strip().lower()
    return name if name.isidentifier() else "cpu"


def kind_of(spec: Any) -> str:
    """The experiment a grid belongs to for calibration: its activation, phase space and whether it trains on
    minibatches (each changes how many pixels diverge and how early)."""
    return f"{spec.activation}/{spec.phase_space}" + ("/minibatch" if spec.batch_size else "")


def _slot(dtype: str, device: str, kind: str | None = None) -> str:
    return f"{device_type(device)}/{dtype}" + (f"/{kind}" if kind else "")


def _read(path: Path) -> dict[str, list[dict]]:
    """The histories in ``rates.json``; an absent, unparsable or malformed file reads as empty (the next record
    rewrites it), and malformed entries are dropped one by one."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    table = data.get("rates") if isinstance(data, dict) and data.get("version") == VERSION else None
    if not isinstance(table, dict):
        return {}
    out: dict[str, list[dict]] = {}
    for slot, hist in table.items():
        if isinstance(slot, str) and isinstance(hist, list):
            good = [e for e in hist if isinstance(e, dict) and _positive(e.get("rate")) is not None]
            if good:
                out[slot] = good[-HISTORY:]
    return out


def overhead_of(stats: dict) -> float | None:
    """The seconds a finished grid job spent outside training (``overhead_s``; None for results written before
    it was recorded, or when it is not a number below the job's whole time)."""
    if not isinstance(stats, dict):
        return None
    value, elapsed = stats.get("overhead_s"), _positive(stats.get("elapsed_s"))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or elapsed is None:
        return None
    return float(value) if math.isfinite(value) and 0 <= value < elapsed else None


def stepped_of(stats: dict) -> float | None:
    """The share of a finished grid's network-steps that were run (diverged networks stop early), or None."""
    if not isinstance(stats, dict):
        return None
    run, full = _positive(stats.get("network_steps")), _positive(stats.get("network_steps_full"))
    return None if run is None or full is None or run > full else run / full


def rate_of(spec: Any, stats: dict) -> float | None:
    """The speed a finished grid trained at, in reference network-steps per second, counting the steps it ran
    (its overhead left out); None when its stats lack the numbers (results written before stats existed) or it
    trained nothing (every pixel reused)."""
    if not isinstance(stats, dict):
        return None
    steps, elapsed = _positive(stats.get("network_steps")), _positive(stats.get("elapsed_s"))
    if steps is None or elapsed is None:
        return None
    from engine.trainability import cost  # imported here: importing runs must not import torch

    return steps * cost._cost_per_step(spec) / cost._REF_COST / (elapsed - (overhead_of(stats) or 0.0))


def record_rate(dtype: str, device: str, rate: float, key: str = "", store: Store | None = None,
                kind: str | None = None, overhead: float | None = None, stepped: float | None = None) -> None:
    """Append one measured rate (and the job's overhead seconds, when known) to its (device type, dtype) history
    and, with ``kind``, to that experiment's history too, keeping the last :data:`HISTORY` of each."""
    rate = _positive(rate)
    if rate is None:
        raise ValueError(f"rate: must be a finite number > 0, got {rate!r}")
    if overhead is not None and (isinstance(overhead, bool) or not isinstance(overhead, (int, float))
                                 or not math.isfinite(overhead) or overhead < 0):
        raise ValueError(f"overhead: must be a finite number of seconds >= 0, got {overhead!r}")
    if stepped is not None and (isinstance(stepped, bool) or not isinstance(stepped, (int, float))
                                or not 0 < stepped <= 1):
        raise ValueError(f"stepped: must be a share in (0, 1], got {stepped!r}")
    st = _store(store)
    path = st.root / FILE
    with _locked(st):
        table = _read(path)
        for slot in [_slot(dtype, device)] + ([_slot(dtype, device, kind)] if kind else []):
            hist = table.setdefault(slot, [])
            entry = {"rate": rate, "t": time.time(), "key": str(key)[:200]}
            if overhead is not None:
                entry["overhead"] = float(overhead)
            if stepped is not None:
                entry["stepped"] = float(stepped)
            hist.append(entry)
            table[slot] = hist[-HISTORY:]
        write_json_atomic(path, {"version": VERSION, "rates": table})


def record(spec: Any, stats: dict, key: str = "", store: Store | None = None) -> float | None:
    """Record the rate of a grid that ran on this machine from its stats; the rate, or None when nothing was
    recorded (no usable numbers, or the grid ran on a cluster)."""
    if not isinstance(stats, dict) or stats.get("scheduler") not in LOCAL:
        return None
    rate = rate_of(spec, stats)
    if rate is None:
        return None
    dtype = stats.get("dtype") if isinstance(stats.get("dtype"), str) else spec.dtype
    record_rate(dtype, device_type(stats.get("device")), rate, key=key, store=store, kind=kind_of(spec),
                overhead=overhead_of(stats), stepped=stepped_of(stats))
    return rate


def history(dtype: str, device: str = "cpu", store: Store | None = None, kind: str | None = None) -> list[float]:
    """The recorded rates of ``dtype`` on ``device`` (of experiment ``kind`` only, when given), oldest first."""
    return _values(_read(_store(store).root / FILE), _slot(dtype, device, kind), "rate")


def _values(table: dict, slot: str, name: str) -> list[float]:
    return [float(e[name]) for e in table.get(slot, [])
            if isinstance(e.get(name), (int, float)) and not isinstance(e.get(name), bool)
            and math.isfinite(e[name]) and e[name] >= 0]


def _median(table: dict, name: str, dtype: str, device: str, kind: str | None) -> float | None:
    """The median of ``name`` over experiment ``kind``'s entries when it has any, else over the dtype's."""
    values = (_values(table, _slot(dtype, device, kind), name) if kind else []) or _values(
        table, _slot(dtype, device), name)
    return statistics.median(values) if values else None


def measured(dtype: str, device: str = "cpu", store: Store | None = None, kind: str | None = None) -> float | None:
    """The median of this machine's last :data:`HISTORY` rates for ``dtype`` on ``device``: those of experiment
    ``kind`` (:func:`kind_of`) when one of its grids finished here, else the dtype's (None before any)."""
    return _median(_read(_store(store).root / FILE), "rate", dtype, device, kind)


def overhead(dtype: str, device: str = "cpu", store: Store | None = None, kind: str | None = None) -> float | None:
    """The median overhead seconds of this machine's recorded grid jobs, chosen as :func:`measured` chooses (None
    before a job that recorded one finished)."""
    return _median(_read(_store(store).root / FILE), "overhead", dtype, device, kind)


def _stepped(table: dict, dtype: str, device: str, kind: str | None) -> float | None:
    values = _values(table, _slot(dtype, device, kind), "stepped") if kind else []
    if values:
        return statistics.median(values)
    from engine.trainability.presets import PRESETS  # here: importing runs must not import torch

    priors = {}
    for p in reversed(list(PRESETS.values())):  # the first preset of an experiment speaks for it
        priors[kind_of(p.spec)] = p.stepped
    return priors.get(kind)


def stepped(dtype: str, device: str = "cpu", store: Store | None = None, kind: str | None = None) -> float | None:
    """The median share of network-steps run by experiment ``kind``'s recorded grids here, else the preset's
    built-in share for that experiment (``Preset.stepped``), else None (then every step counts)."""
    return _stepped(_read(_store(store).root / FILE), dtype, device, kind)


def calibrated_seconds(spec: Any, device: str = "cpu", store: Store | None = None) -> float:
    """The grid's estimated seconds, ``overhead + work * stepped / rate``, from the numbers measured here for its
    experiment (or its dtype; the share from the preset when the experiment never ran here), or from the built-in
    constants when this machine has not finished a grid of that dtype yet. Reads ``rates.json`` once (the
    explorer asks on every rerun)."""
    from engine.trainability.cost import estimate_seconds

    table, kind = _read(_store(store).root / FILE), kind_of(spec)
    rate = _median(table, "rate", spec.dtype, device, kind)
    if rate is None:
        return estimate_seconds(spec)
    share = _stepped(table, spec.dtype, device, kind)
    return (estimate_seconds(spec, rate=rate) * (1.0 if share is None else share)
            + (_median(table, "overhead", spec.dtype, device, kind) or 0.0))


def after_commit(kind: str, job_id: str, spec: Any) -> float | None:
    """The worker's hook after a job entered the store: a grid's stats become a recorded rate. Never raises:
    a result without stats, or a store that cannot be written, must not turn a finished job into a failure."""
    if kind != "grid":
        return None
    try:
        from engine.trainability import results

        st = records.store()
        with st.reading(job_id, touch=False) as folder:
            stats = getattr(results.load(folder), "stats", None)
        return record(spec, stats, key=job_id, store=st) if isinstance(stats, dict) else None
    except Exception as exc:  # noqa: BLE001 - calibration is a by-product of the job, never its failure
        print(f"runs: rate of {job_id} not recorded: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return None
