"""runs.kinds: the one registry of job kinds. Every reference must name a real object (spec class, task,
thumbnail), the registry must stay light to import, and old job records must still find their kind."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from engine.specs import SpecMixin
from runs import kinds, worker
from tests import runs_fixture_tasks as fx
from tests.runs_fixture_tasks import SleepSpec

ROOT = Path(__file__).resolve().parents[2]
# What a job record written before the restructure names (module, spec class, function): jobs.TASKS then.
OLD_TASKS = {
    "grid": ("engine.trainability", "GridSpec", "run_to_dir"),
    "zoom_video": ("engine.video", "VideoSpec", "run_to_dir"),
    "fractalnet_train": ("engine.training", "TrainSpec", "run_to_dir"),
    "kron_train": ("engine.kronecker_net", "KronTrainSpec", "run_to_dir"),
}


def _example_spec(name: str) -> SpecMixin:
    """A default spec of a built-in kind (a zoom video: from the default grid's range into a quarter of it)."""
    cls = kinds.KINDS[name].spec_class()
    if name != "zoom_video":
        return cls()
    full = kinds.KINDS["grid"].spec_class()()
    (x0, x1), (y0, y1) = full.x_range, full.y_range
    view = dataclasses.replace(full, x_range=(x0, x0 + (x1 - x0) / 4), y_range=(y0, y0 + (y1 - y0) / 4))
    return cls(grid=view, full_x_range=full.x_range, full_y_range=full.y_range)


def test_the_registry_lists_the_four_kinds_with_titles():
    assert kinds.BUILT_IN == ("grid", "zoom_video", "fractalnet_train", "kron_train")
    assert set(OLD_TASKS) == set(kinds.BUILT_IN)
    for name in kinds.BUILT_IN:
        kind = kinds.KINDS[name]
        assert kind.name == name and kind.title and kind.title != name and kind.thumbnail
        assert kinds.title(name) == kind.title
    assert kinds.title("no_such_kind") == "no_such_kind"


def test_importing_the_registry_imports_no_engine_topic():
    code = ("import sys, runs.kinds, runs; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('engine.trainability', "
            "'engine.fractalnet', 'engine.kronecker', 'engine.datasets', 'streamlit'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["grid", "zoom_video", "fractalnet_train", "kron_train"])
def test_every_reference_names_a_real_object(name):
    kind = kinds.KINDS[name]
    spec_cls = kind.spec_class()
    assert dataclasses.is_dataclass(spec_cls) and issubclass(spec_cls, SpecMixin)
    assert spec_cls.__name__ == OLD_TASKS[name][1]  # the class name is part of every store key
    task = inspect.signature(kind.task_function())
    assert list(task.parameters)[:2] == ["spec", "out_dir"]
    assert task.parameters["progress"].default is None and task.parameters["cancel"].default is None
    thumb = inspect.signature(kind.thumbnail_function())
    assert len([p for p in thumb.parameters.values() if p.default is inspect.Parameter.empty]) == 1


@pytest.mark.parametrize("name", ["grid", "zoom_video", "fractalnet_train", "kron_train"])
def test_a_record_written_before_the_move_still_loads(name):
    spec = _example_spec(name)
    record = {"kind": name, "spec": spec.to_dict(), "task": list(OLD_TASKS[name])}
    loaded, fn = worker.load_task(record)
    assert loaded == spec and fn is kinds.KINDS[name].task_function()


def test_the_registry_wins_over_the_record_and_the_record_serves_unknown_kinds():
    fx.register()
    spec = SleepSpec(steps=2)
    stale = {"kind": "sleep", "spec": spec.to_dict(), "task": ["engine.no_such_module", "X", "run_to_dir"]}
    assert worker.load_task(stale) == (spec, fx.run_to_dir)
    foreign = {"kind": "elsewhere", "spec": spec.to_dict(),
               "task": {"spec": f"{fx.MODULE}:SleepSpec", "task": f"{fx.MODULE}:run_to_dir"}}
    assert worker.load_task(foreign) == (spec, fx.run_to_dir)
    legacy = dict(foreign, task=[fx.MODULE, "SleepSpec", "run_to_dir"])
    assert worker.load_task(legacy) == (spec, fx.run_to_dir)
    with pytest.raises(LookupError, match="unknown job kind 'elsewhere'"):
        worker.load_task(dict(foreign, task=None))
    with pytest.raises(LookupError, match=f"{fx.MODULE} has no 'Nope'"):
        worker.load_task(dict(foreign, task={"spec": f"{fx.MODULE}:Nope", "task": f"{fx.MODULE}:run_to_dir"}))


def test_register_task_and_bad_references():
    kind = kinds.register_task("sleep_two", fx.MODULE, "SleepSpec", thumbnail="thumbnail", title="Two")
    try:
        assert kinds.get("sleep_two") is kind and kind.title == "Two"
        assert kind.spec_class() is SleepSpec and kind.task_function() is fx.run_to_dir
        assert kind.thumbnail_function() is fx.thumbnail
    finally:
        kinds.KINDS.pop("sleep_two")
    with pytest.raises(ValueError, match="^kind"):
        kinds.register_task("bad/kind", fx.MODULE, "SleepSpec")
    with pytest.raises(ValueError, match="module:name"):
        kinds.Kind("x", "X", spec="no_colon", task=f"{fx.MODULE}:run_to_dir")
    with pytest.raises(ImportError):
        kinds.resolve("engine.no_such_module:X")
    with pytest.raises(AttributeError):
        kinds.resolve(f"{fx.MODULE}:nothing_here")
