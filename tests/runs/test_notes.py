"""runs.notes: a run's name and note beside its record — atomic, capped with named errors, never in its key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import runs
from cache import default_store
from runs import notes, records
from tests.runs_fixture_tasks import SleepSpec

ROOT = Path(__file__).resolve().parents[2]


def _done(tag: str = "n") -> str:
    job = runs.submit("sleep", SleepSpec(steps=1, step_s=0.0, tag=tag))
    assert runs.wait(job, 30).state == "done"
    return job


def test_write_read_and_clear(env):
    job = _done()
    assert notes.read(job) == notes.Note() and notes.read(job).empty
    saved = notes.write(job, name="  wide net  ", note="lr sweep\nsecond line")
    assert (saved.name, saved.note) == ("wide net", "lr sweep\nsecond line") and saved.updated
    assert notes.read(job) == saved
    assert notes.write(job, note="only the note changes").name == "wide net"  # None keeps the other field
    assert notes.write(job, name="renamed").note == "only the note changes"
    path = records.job_dir(default_store(), job) / notes.FILE
    assert json.loads(path.read_text())["name"] == "renamed"
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []  # written atomically
    assert notes.write(job, name="", note="") == notes.Note() and not path.exists()  # both empty: no file


def test_caps_and_named_errors_leave_the_stored_note(env):
    job = _done()
    notes.write(job, name="kept", note="kept too")
    cases = [
        (dict(name="x" * (notes.MAX_NAME + 1)), f"^name: must be at most {notes.MAX_NAME} characters, got 81"),
        (dict(note="y" * (notes.MAX_NOTE + 5)), "^note: must be at most 2,000 characters, got 2,005"),
        (dict(name="two\nlines"), "^name: must be one line"),
        (dict(name="nul\0"), "^name: must not contain NUL"),
        (dict(note=42), "^note: must be text, got 42"),
    ]
    for kwargs, message in cases:
        with pytest.raises(notes.NoteError, match=message):
            notes.write(job, **kwargs)
        assert (notes.read(job).name, notes.read(job).note) == ("kept", "kept too")
    assert issubclass(notes.NoteError, ValueError)
    assert notes.write(job, name="x" * notes.MAX_NAME).name == "x" * notes.MAX_NAME  # the cap itself is fine
    with pytest.raises(ValueError):
        notes.write("../../etc/passwd", name="no")  # not a run id: no file outside the store


def test_a_damaged_note_reads_as_none(env):
    job = _done()
    path = records.job_dir(default_store(), job) / notes.FILE
    for text in ("{not json", "[1, 2]", json.dumps({"name": "x" * 500}), json.dumps({"name": 3})):
        path.write_text(text)
        assert notes.read(job) == notes.Note()
    path.write_text(json.dumps({"name": "ok", "note": None, "updated": "yesterday"}))
    assert notes.read(job) == notes.Note("ok", "", None)


def test_a_note_is_not_part_of_the_key_and_goes_with_the_run(env):
    job = _done()
    record = default_store().record(job)
    notes.write(job, name="named", note="noted")
    assert default_store().record(job)["spec"] == record["spec"]
    assert runs.submit("sleep", SleepSpec(steps=1, step_s=0.0, tag="n")) == job  # the same computation
    assert [s.id for s in runs.list_runs()] == [job]  # a notes file is no job of its own
    code = f"from runs import notes; print(notes.read({job!r}).name)"  # another process: the page after a reload
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "named", out.stderr
    runs.delete(job)
    assert notes.read(job) == notes.Note()


def test_a_stored_result_without_a_job_can_be_named(env):
    store = default_store()
    key = "grid-0123456789abcdef0123"
    store.put(key, files={"a.txt": "x"}, record={"spec": {}})
    notes.write(key, name="from another machine")
    assert notes.read_many([key]) == {key: notes.read(key)} and notes.read(key).name == "from another machine"
    assert [s.id for s in runs.list_runs()] == [key] and runs.status(key).state == "done"
    runs.clear_all()
    assert notes.read(key) == notes.Note()
