"""Section 4 · Run: pick or open a run, watch it train live, stop it, resume it from its last checkpoint.

A run is a background job on disk (:mod:`runs`), so a reload, a second tab or a ``?run=`` link shows the same one.
"""

from __future__ import annotations

import dataclasses
import time

import streamlit as st

from engine.fractalnet.checkpoint import resume_point
from engine.fractalnet.cost import steps_per_epoch
from engine.fractalnet.train import TrainSpec
from ui.fractalnet.curves import draw_live
from ui.fractalnet.setup import KIND, P, apply_setup, get, open_run, setup_from_spec
from ui.jobs import linked_status, live_job_fragment, short_id


def fractalnet_runs() -> list:
    import runs

    try:
        return [r for r in runs.list_runs() if r.kind == KIND]
    except Exception:  # noqa: BLE001 - a store being cleared under us: show no runs rather than crash
        return []


def _variant(spec: dict) -> str:
    try:
        return setup_from_spec(spec)["variant"] if spec else "?"
    except (TypeError, ValueError):
        return "?"


def run_label(run) -> str:
    spec = run.spec or {}
    m = spec.get("model", {})
    variant = _variant(spec)
    when = time.strftime("%m-%d %H:%M", time.localtime(run.created)) if run.created else ""
    return (f"{when} · {variant} · {spec.get('dataset', '?')} · {spec.get('epochs', '?')} ep · "
            f"join {m.get('join', '?')} · {run.state} · {run.id[-6:]}")


def _picker(all_runs: list) -> None:
    if not all_runs:
        return
    labels = {r.id: run_label(r) for r in all_runs}

    def on_pick() -> None:
        if st.session_state.get(P + "open_pick"):
            open_run(st.session_state[P + "open_pick"])

    st.selectbox("Open an earlier run", ["", *labels], key=P + "open_pick", on_change=on_pick,
                 format_func=lambda k: labels.get(k, "— pick a run —"))


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def checkpoint_text(point: dict) -> str:
    """Where a stopped run's checkpoint stands, counted as the curves count: step N of the run, in epoch E (from
    1), or at the end of epoch E. (The checkpoint's own ``epoch`` is the epochs *completed with their test pass*:
    a run stopped after the last step of epoch 10, before its test pass, says ``epoch 9, step 450``.)"""
    step, tested = _count(point.get("step")), _count(point.get("epoch"))
    spec = point.get("spec") if isinstance(point.get("spec"), dict) else {}
    data = point.get("dataset") if isinstance(point.get("dataset"), dict) else {}
    n, batch, total = _count(data.get("train")), _count(spec.get("batch_size")), _count(spec.get("epochs"))
    if step is None:
        return "A checkpoint was kept."
    if not (n and batch):
        return (f"A checkpoint was kept after step {step:,}"
                + (f" ({tested} epochs finished)." if tested is not None else "."))
    per = steps_per_epoch(n, batch)
    done, into = divmod(step, per)
    of = f" of {total}" if total else ""
    if into:
        return f"A checkpoint was kept at step {step:,}: {into} of {per} steps into epoch {done + 1}{of}."
    text = f"A checkpoint was kept at step {step:,}, the end of epoch {done}{of}"
    if tested is not None and tested < done:
        text += " (its test pass had not run yet; a resume runs it first)"
    return text + "."


def _resume(status) -> None:
    import runs

    partial = runs.partial_dir(status.id)
    point = resume_point(partial) if partial is not None else None
    if point is None:
        st.caption("No checkpoint was kept (the run stopped before its first step); train again to restart.")
        return
    st.info(checkpoint_text(point), icon=":material/save:")

    def resume(spec_dict: dict = status.spec, src: str = str(partial)) -> None:
        open_run(runs.submit(KIND, dataclasses.replace(TrainSpec.from_dict(spec_dict), resume_from=src)))

    st.button("Resume from the last checkpoint", key=P + "resume", on_click=resume, type="primary",
              icon=":material/resume:")


def run_section(all_runs: list):
    """Draw the open run (live while it trains); return its status (None when no run is open)."""
    import runs

    _picker(all_runs)
    current = get("run") or ""
    if not current:
        st.info("Press **Train** to start a run; it trains in the background, so you can reload or leave the page.")
        return None
    status, why = linked_status(current)
    if status is None or status.kind != KIND:
        st.warning(f"No FractalNet run to show: {why}." if why else
                   f"No FractalNet run `{short_id(current)}` here (deleted, or a link from another machine).")
        return None
    spec = status.spec or {}
    st.markdown(
        f"Run `{status.id}` · **{_variant(spec)}** on **{spec.get('dataset', '?')}** · "
        f"{spec.get('epochs', '?')} epochs · batch {spec.get('batch_size', '?')} · {spec.get('optimizer', '?')} "
        f"lr {spec.get('lr', '?')} · join {spec.get('model', {}).get('join', '?')}"
        + (" · resumed from a checkpoint" if spec.get("resume_from") else "")
    )
    st.button("Use this run's setup above", key=P + "use_setup", on_click=apply_setup, args=(spec,),
              icon=":material/settings_backup_restore:")
    live_job_fragment(status.id, key="fn-job", interval=1.0, extra=draw_live)
    status = runs.status(status.id) or status
    if status.state in ("cancelled", "failed"):
        _resume(status)
    return status
