"""A run's name and note, written by people on the Runs page: ``jobs/<id>/notes.json`` under the store root.

They live beside the job's record, never in its spec, so naming a run changes no store key (asking for the same
computation still finds it), and deleting the run (:func:`runs.delete`) removes them with it. Each save is one
atomic write (``engine.io.write_json_atomic``): a reader sees the old note or the new one, never half of one.

    notes.write(run_id, name="lr sweep, wide", note="compare with the ReLU run")
    notes.read(run_id)          # Note(name=..., note=..., updated=...); Note() when nothing was written
"""

from __future__ import annotations

import dataclasses
import json
import time

from engine.io import write_json_atomic
from engine.specs import short_repr
from runs import records

FILE = "notes.json"
MAX_NAME = 80  # characters: one line in a row's title
MAX_NOTE = 2000  # characters: a paragraph or two


class NoteError(ValueError):
    """A name or note that cannot be kept; the message starts with the field (``"name: …"``), like a spec's."""


@dataclasses.dataclass(frozen=True)
class Note:
    name: str = ""
    note: str = ""
    updated: float | None = None

    @property
    def empty(self) -> bool:
        return not self.name and not self.note


def _check(field: str, value: object, limit: int, one_line: bool) -> str:
    if not isinstance(value, str):
        raise NoteError(f"{field}: must be text, got {short_repr(value)}")
    value = value.strip()
    if len(value) > limit:
        raise NoteError(f"{field}: must be at most {limit:,} characters, got {len(value):,}")
    if "\0" in value:
        raise NoteError(f"{field}: must not contain NUL characters")
    if one_line and any(c in value for c in "\r\n"):
        raise NoteError(f"{field}: must be one line, got {value.count(chr(10)) + 1} lines")
    return value


def check_name(name: object) -> str:
    """``name`` stripped: one line of at most :data:`MAX_NAME` characters, else :class:`NoteError`."""
    return _check("name", name, MAX_NAME, one_line=True)


def check_note(note: object) -> str:
    """``note`` stripped: at most :data:`MAX_NOTE` characters, else :class:`NoteError`."""
    return _check("note", note, MAX_NOTE, one_line=False)


def _path(run_id: str):
    return records.job_dir(records.store(), run_id) / FILE  # job_dir checks the id (ValueError for a bad one)


def read(run_id: str) -> Note:
    """The run's name and note (an empty :class:`Note` when none was written, or the file is unreadable or
    holds something else: a damaged note never stops a row from being drawn)."""
    try:
        data = json.loads(_path(run_id).read_bytes())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return Note()
    if not isinstance(data, dict):
        return Note()
    name, note, updated = data.get("name"), data.get("note"), data.get("updated")
    try:
        name, note = check_name(name if name is not None else ""), check_note(note if note is not None else "")
    except NoteError:
        return Note()
    ok_time = isinstance(updated, (int, float)) and not isinstance(updated, bool)
    return Note(name, note, float(updated) if ok_time else None)


def write(run_id: str, name: str | None = None, note: str | None = None) -> Note:
    """Set the run's name and/or note (None keeps the stored one); both empty removes the file. Checked first
    (:class:`NoteError` naming the field), so a refused value leaves the stored note as it was. Return what is
    stored now."""
    old = read(run_id)
    new = Note(check_name(old.name if name is None else name), check_note(old.note if note is None else note),
               time.time())
    path = _path(run_id)
    if new.empty:
        path.unlink(missing_ok=True)
        return Note()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, dataclasses.asdict(new))
    return new


def read_many(run_ids) -> dict[str, Note]:
    """:func:`read` of each id (one dict for a list of rows)."""
    return {run_id: read(run_id) for run_id in run_ids}
