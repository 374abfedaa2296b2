"""runs.describe (the fields that tell runs apart; every field for a table) and runs.resume (which stopped runs
can continue, and the spec that continues them)."""

from __future__ import annotations

import dataclasses
import time

import pytest

import runs
from cache import default_store
from runs import describe, kinds, records, resume
from tests.runs_fixture_tasks import SleepSpec


def _spec(kind: str, **changes) -> dict:
    return dataclasses.replace(kinds.KINDS[kind].spec_class()(), **changes).to_dict()


def test_key_fields_per_kind():
    grid = dict(describe.key_fields("grid", _spec("grid", resolution=(32, 32))))  # a view of the tanh preset
    assert grid["preset"] == "tanh" and grid["resolution"] == "32×32 px" and grid["steps"] == "500"
    assert dict(describe.key_fields("grid", _spec("grid", steps=100)))["preset"] == "custom"  # other physics
    assert dict(describe.key_fields("grid", _spec("grid", activation="relu")))["preset"] == "relu"
    fn = dict(describe.key_fields("fractalnet_train", _spec("fractalnet_train", epochs=3)))
    assert (fn["variant"], fn["dataset"], fn["epochs"]) == ("small", "digits", "3")
    kr = dict(describe.key_fields("kron_train", _spec("kron_train", task="digits")))
    assert kr["power"] == "2" and kr["task"] == "digits" and kr["base"].endswith("nodes)")
    video = dict(describe.key_fields("zoom_video", {"grid": _spec("grid"), "resolution": [64, 64], "fps": 8}))
    assert video["preset"] == "tanh" and video["keyframes"] == "64×64 px" and video["fps"] == "8"


def test_key_fields_never_raise_for_a_damaged_spec():
    assert describe.key_fields("grid", None) == []
    assert dict(describe.key_fields("fractalnet_train", {"model": "garbage", "epochs": 2}))["variant"] == "—"
    assert dict(describe.key_fields("zoom_video", {"grid": [1, 2]}))["activation"] == "—"
    assert describe.key_fields("unknown_kind", {"b": 1, "a": [0.5, None]}) == [("b", "1"), ("a", "[0.5, —]")]


def test_flatten_in_the_declared_order():
    spec = dict(sorted(_spec("fractalnet_train").items()))  # a stored record sorts its keys
    flat = describe.flatten(spec, "fractalnet_train")
    assert list(flat)[0].startswith("model.") and "model.join" in flat and flat["augment"] == "yes"
    assert list(describe.flatten(spec))[0] == "augment"  # without a kind: the record's order


def _stopped(env_store, state: str, partial_files: dict[str, str] | None) -> str:
    spec = SleepSpec(steps=5, tag=f"stopped-{state}-{partial_files}")
    key = env_store.key("sleep", spec)
    jd = records.job_dir(env_store, key)
    jd.mkdir(parents=True)
    now = time.time()
    records.write(jd, {"id": key, "kind": "sleep", "spec": spec.to_dict(), "state": state, "message": state,
                       "created": now, "started": now, "finished": now})
    if partial_files is not None:
        (jd / "partial").mkdir()
        for name, text in partial_files.items():
            (jd / "partial" / name).write_text(text)
    return key


@pytest.fixture
def resumable_sleep(env, monkeypatch):
    """The sleep kind made resumable for this test: its checkpoint.txt is the step reached."""
    import tests.runs_fixture_tasks as fx

    def point(folder):
        path = folder / "checkpoint.txt"
        return {"step": int(path.read_text())} if path.is_file() else None

    monkeypatch.setattr(fx, "resume_point", point, raising=False)
    monkeypatch.setitem(resume.RESUMABLE, "sleep", resume.Resumable(f"{fx.MODULE}:resume_point", "tag"))
    return default_store()


def test_resume_point_only_for_a_stopped_run_with_a_checkpoint(resumable_sleep):
    store = resumable_sleep
    cancelled = _stopped(store, "cancelled", {"checkpoint.txt": "3"})
    failed = _stopped(store, "failed", {"checkpoint.txt": "2"})
    empty = _stopped(store, "cancelled", {"other.txt": "x"})
    none = _stopped(store, "cancelled", None)
    assert resume.resume_point(cancelled) == {"step": 3} and resume.resume_point(failed) == {"step": 2}
    assert resume.resume_point(empty) is None and resume.resume_point(none) is None
    done = runs.submit("sleep", SleepSpec(steps=1, step_s=0.0, tag="done"))
    assert runs.wait(done, 30).state == "done" and resume.resume_point(done) is None
    with pytest.raises(ValueError, match="has no checkpoint"):
        resume.resumed_spec(empty)
    spec = resume.resumed_spec(cancelled)
    assert spec.tag == str(runs.partial_dir(cancelled)) and spec.steps == 5  # the old spec, pointing at partial/


def test_a_kind_that_cannot_resume_is_never_offered(env):
    stopped = _stopped(default_store(), "cancelled", {"checkpoint.txt": "3"})
    assert "sleep" not in resume.RESUMABLE and resume.resume_point(stopped) is None
    assert set(resume.RESUMABLE) <= set(kinds.BUILT_IN)
