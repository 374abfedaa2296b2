"""Jobs and stored results under hostile conditions (issue 12, items 7, 12, 14, 15, 16, 18, 19): run ids no file
system can hold, results damaged on disk (never served, never a traceback, every other row still listed), a
corrupt record that must be recomputed, a killed training whose checkpoint another job's commit used to delete,
a relative store path, and bad knobs. Real worker processes run the tiny SleepSpec task."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import runs
from cache import default_store, pid_alive
from engine.errors import DamagedResult
from tests.runs.conftest import wait_state
from tests.runs_fixture_tasks import SleepSpec

ROOT = Path(__file__).resolve().parents[2]


def _wait_state(job_id, states, timeout=60.0):
    return wait_state(job_id, states, timeout)


def _wait_events(job_id, n, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(runs.events(job_id)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{job_id}: fewer than {n} events: {runs.status(job_id)}")


def _done(kind: str, spec) -> str:
    job = runs.submit(kind, spec)
    st = runs.wait(job, 60)
    assert st.state == "done", st
    return job


def _flip(path: Path, offset_from_end: int = 9) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------------------ item 7: run ids
@pytest.mark.parametrize("bad", ["x" * 300, "sleep-" + "0" * 250, "../x", "a b"])
def test_run_ids_no_store_can_hold_are_named_errors(env, bad):
    for call in (runs.status, runs.result_dir, runs.partial_dir, runs.cancel, runs.delete, runs.events,
                 runs.event_log, runs.run_worker):
        with pytest.raises(ValueError, match=r"^key: must be 1 to 200 characters"):
            call(bad)
    assert runs.thumbnail(bad) is None  # a picture of no run: nothing to draw, no traceback


def test_a_kind_too_long_for_a_run_id_is_a_named_error(env):
    runs.register_task("k" * 250, "tests.runs_fixture_tasks", "SleepSpec")
    try:
        with pytest.raises(ValueError, match=r"^key: must be 1 to 200 characters"):
            runs.submit("k" * 250, SleepSpec())
    finally:
        runs.KINDS.pop("k" * 250)


# ----------------------------------------------------------------------------------- item 14: checksums
def test_a_bitflipped_result_is_never_served(env):
    job = _done(env, SleepSpec(steps=64, step_s=0.0, tag="flip"))
    folder = runs.result_dir(job)
    assert folder is not None and runs.thumbnail(job) is not None
    _flip(folder / "values.npy")
    with pytest.raises(DamagedResult, match=r"^values\.npy: fails its checksum"):
        runs.result_dir(job)
    with pytest.raises(DamagedResult, match="values.npy"):
        default_store().load_arrays(job)
    assert runs.thumbnail(job) is None  # not a picture drawn from damaged numbers


def test_result_dir_does_not_hash_again_on_a_rerun(env, monkeypatch):
    from cache import integrity

    job = _done(env, SleepSpec(steps=5, step_s=0.0, tag="cached"))
    hashed: list[str] = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    for _ in range(4):
        assert runs.result_dir(job) is not None
    assert sorted(hashed) == ["spec.json", "values.npy"]  # once each, on the first read


# ------------------------------------------------------------------------------ item 15: a corrupt record
def test_a_corrupt_record_is_recomputed_and_replaced(env, tmp_path):
    counter = tmp_path / "count.txt"
    spec = SleepSpec(steps=3, step_s=0.0, counter_file=str(counter), tag="corrupt")
    job = _done(env, spec)
    store = default_store()
    (store.path(job, touch=False) / "record.json").write_text("")
    st = runs.status(job)
    assert st.state == "failed" and "damaged" in st.message and not st.has_result
    assert runs.result_dir(job) is None
    assert runs.submit(env, spec) == job  # counts as absent: computed again
    assert runs.wait(job, 60).state == "done"
    assert len(counter.read_text().splitlines()) == 2
    assert store.verify(job) is not None and store.damage(job) is None
    np.testing.assert_array_equal(store.load_arrays(job)["values"], np.arange(3.0))


# ---------------------------------------------------------------- item 12 (runs side): lists survive damage
def test_the_runs_list_and_thumbnails_survive_damaged_entries(env):
    good = _done(env, SleepSpec(steps=4, step_s=0.0, tag="good"))
    flipped = _done(env, SleepSpec(steps=40, step_s=0.0, tag="flipped"))
    corrupt = _done(env, SleepSpec(steps=4, step_s=0.0, tag="corrupt-record"))
    store = default_store()
    _flip(store.path(flipped, touch=False) / "values.npy")
    (store.path(corrupt, touch=False) / "record.json").write_bytes(b"{\x00\xff")
    shutil.rmtree(store.root / "jobs" / corrupt)  # only the store knows it now (as after "clear job history")
    rows = {s.id: s for s in runs.list_runs()}
    assert set(rows) == {good, flipped, corrupt}
    assert rows[corrupt].state == "failed" and "damaged" in rows[corrupt].message
    assert runs.thumbnail(good) is not None
    assert runs.thumbnail(flipped) is None and runs.thumbnail(corrupt) is None
    assert runs.delete(corrupt) and not (store.entries_dir / corrupt).exists()  # and it can be removed


# -------------------------------------------------------------------- item 16: a killed run's checkpoint
def test_a_killed_training_keeps_its_checkpoint_when_another_job_commits(env):
    store = default_store()
    spec = SleepSpec(steps=150, step_s=0.03, checkpoint=True, tag="killed")
    job = runs.submit(env, spec)
    _wait_events(job, 3)
    pid = runs.status(job).pid
    other = runs.submit(env, SleepSpec(steps=10, step_s=0.05, tag="other"))  # runs beside it (2 slots)
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 60
    while not store.has(other) and time.time() < deadline:  # no status read of the killed job meanwhile:
        time.sleep(0.02)                                       # the other job's commit comes first
    assert store.has(other)
    st = _wait_state(job, ("failed",))
    assert "interrupted" in st.message and not pid_alive(pid)
    partial = runs.partial_dir(job)
    assert partial is not None and (partial / "checkpoint.txt").is_file(), "the checkpoint was deleted"
    reached = int((partial / "checkpoint.txt").read_text())
    assert reached >= 3
    assert runs.submit(env, spec, resume=True) == job  # and a resume uses it
    assert runs.wait(job, 60).state == "done"
    assert int((runs.result_dir(job) / "resumed_from.txt").read_text()) == reached


# ----------------------------------------------------------------------- item 18: a relative store path
def test_a_job_submitted_from_another_folder_with_a_relative_store_path(env, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    name = f"rel-store-{uuid.uuid4().hex[:8]}"
    script = textwrap.dedent("""
        import runs
        from tests.runs_fixture_tasks import SleepSpec, register
        kind = register()
        job = runs.submit(kind, SleepSpec(steps=3, step_s=0.01, tag="relative"))
        st = runs.wait(job, 60)
        print(st.state, job, st.message)
    """)
    env_vars = dict(os.environ, FRACTAL_LAB_CACHE=name, PYTHONPATH=str(ROOT))
    try:
        proc = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env_vars, capture_output=True,
                              text=True, timeout=120)
        state, job, *_ = proc.stdout.split() + ["", ""]
        assert proc.returncode == 0 and state == "done", proc.stdout + proc.stderr
        assert (elsewhere / name / "entries" / job / "values.npy").is_file()
    finally:
        shutil.rmtree(ROOT / name, ignore_errors=True)  # where a worker started in the repo root looked


# ---------------------------------------------------------------------------------- item 19: the knobs
@pytest.mark.parametrize("knob,call,words", [
    ("FRACTAL_LAB_MAX_JOBS", runs.max_jobs, r"an integer in \[1, 4096\]"),
    ("FRACTAL_LAB_CANCEL_GRACE_S", runs.cancel_grace_s, r"a number in \[0.1, 3600\]"),
])
@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-1", "0", "1e-300", "9" * 5000, "two"])
def test_job_knobs_refuse_hostile_values(monkeypatch, knob, call, words, value):
    monkeypatch.setenv(knob, value)
    with pytest.raises(ValueError, match=rf"^{knob}: must be {words}, got"):
        call()


# ----------------------------------------------------------- item 12 (reader side): the engine's readers
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _header_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[20] ^= 0x40  # inside a .npy header / a safetensors header
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(b'{"not json, not csv\x00\xff')


def _missing(path: Path) -> None:
    path.unlink()


def _wrong_shape(path: Path) -> None:
    path.write_text(json.dumps({"table": "not rows", "accuracy": 3}))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """One real result folder per kind (tiny specs), kept pristine; each case damages a copy."""
    import torch

    from engine.fractalnet import results as fr
    from engine.fractalnet.train import TrainSpec
    from engine.fractalnet.variants import variant_config
    from engine.kronecker import results as kr
    from engine.kronecker.spec import KronSpec, KronTrainSpec
    from engine.trainability import presets
    from engine.trainability import results as tr

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    out["grid"] = tmp_path_factory.mktemp("grid")
    tr.run_to_dir(dataclasses.replace(presets.preset("tanh", resolution=8), steps=20), out["grid"])
    out["fractalnet"] = tmp_path_factory.mktemp("fractalnet")
    fr.run_to_dir(TrainSpec(model=variant_config("micro"), max_train=32, max_test=32, epochs=1, batch_size=32,
                            warmup_epochs=0.5, bn_calibration=32), out["fractalnet"], threads=1)
    out["kronecker"] = tmp_path_factory.mktemp("kronecker")
    kr.run_to_dir(KronTrainSpec(graph=KronSpec(base=((1, 0), (1, 1)), names=("a", "b"), power=1), width=8,
                                epochs=1, batch_size=512, baselines=()), out["kronecker"])
    torch.set_num_threads(old)
    return out


def _grid_load(d):
    from engine.trainability import results

    return results.load(d)


def _grid_thumbnail(d):
    from engine.trainability import results

    return results.thumbnail(d)


def _fn_summary(d):
    from engine.fractalnet import results

    return results.read_summary(d)


def _fn_metrics(d):
    from engine.fractalnet import results

    return results.read_metrics(d)


def _fn_model(d):
    from engine.fractalnet import results

    return results.load_model(d)


def _fn_thumbnail(d):
    from engine.fractalnet import results

    return results.thumbnail(d)


def _kr_read(d):
    from engine.kronecker import results

    return results.read(d)


def _kr_spec(d):
    from engine.kronecker import results

    return results.read_spec(d)


def _kr_thumbnail(d):
    from engine.kronecker import results

    return results.thumbnail(d)


READER_CASES = [  # kind, damaged file, damage, reader, thumbnail that reads that file (or None)
    ("grid", "measure.npy", _truncate, _grid_load, _grid_thumbnail),
    ("grid", "measure.npy", _header_flip, _grid_load, _grid_thumbnail),
    ("grid", "converged.npy", _missing, _grid_load, None),
    ("grid", "converged.npy", _garbage, _grid_load, None),
    ("grid", "dimension.json", _garbage, _grid_load, None),
    ("grid", "spec.json", _garbage, _grid_load, None),
    ("grid", "image.png", _truncate, _grid_load, None),
    ("fractalnet", "summary.json", _missing, _fn_summary, None),
    ("fractalnet", "summary.json", _truncate, _fn_summary, _fn_thumbnail),
    ("fractalnet", "summary.json", _wrong_shape, _fn_summary, _fn_thumbnail),
    ("fractalnet", "metrics.csv", _garbage, _fn_metrics, None),
    ("fractalnet", "model.safetensors", _truncate, _fn_model, None),
    ("fractalnet", "model.safetensors", _header_flip, _fn_model, None),
    ("fractalnet", "config.json", _garbage, _fn_model, None),
    ("kronecker", "summary.json", _missing, _kr_read, None),
    ("kronecker", "summary.json", _truncate, _kr_read, _kr_thumbnail),
    ("kronecker", "summary.json", _wrong_shape, _kr_read, _kr_thumbnail),
    ("kronecker", "spec.json", _garbage, _kr_spec, None),
]


@pytest.mark.parametrize("kind,name,damage,reader,thumbnail", READER_CASES,
                         ids=[f"{k}-{n}-{d.__name__.strip('_')}" for k, n, d, _, _ in READER_CASES])
def test_the_engine_readers_name_the_damaged_file(folders, tmp_path, kind, name, damage, reader, thumbnail):
    d = tmp_path / kind
    shutil.copytree(folders[kind], d)
    reader(d)  # the pristine copy reads
    damage(d / name)
    with pytest.raises(DamagedResult, match=rf"^{name.replace('.', '[.]')}: ") as info:
        reader(d)
    assert info.value.path == str(d / name)
    if thumbnail is not None:
        assert thumbnail(d) is None  # a list of runs draws every other row
