"""The store: content-addressed entries, atomic writes (a crash leaves nothing that reads as complete), LRU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
import io
from pathlib import Path

import numpy as np
import pytest

from cache import Store, default_store
from tests.runs_fixture_tasks import SleepSpec

ROOT = Path(__file__).resolve().parents[2]



def test_key_is_kind_and_content_hash(store):
    spec = SleepSpec(steps=4)
    assert store.key("sleep", spec) == f"sleep-{spec.content_hash()}"
    assert store.key("sleep", spec, extra="abc") != store.key("sleep", spec)
    assert store.key("sleep", SleepSpec(steps=4)) == store.key("sleep", spec)
    assert store.key("sleep", SleepSpec(steps=5)) != store.key("sleep", spec)
    with pytest.raises(ValueError, match="^kind"):
        store.key("bad/kind", spec)


def test_put_roundtrip_and_record_fields(store):
    spec = SleepSpec(steps=2)
    key = store.key("sleep", spec)
    assert not store.has(key) and store.record(key) is None
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.put(key, arrays={"measure": arr}, files={"image.png": b"\x89PNG fake", "notes/a.txt": "hi"},
              record={"spec": spec.to_dict(), "elapsed_s": 1.5})
    assert store.has(key)
    rec = store.record(key)
    for field in ("key", "kind", "spec", "created", "elapsed_s", "status", "size"):
        assert field in rec
    assert rec["key"] == key and rec["kind"] == "sleep" and rec["status"] == "done"
    assert rec["spec"] == spec.to_dict() and rec["elapsed_s"] == 1.5
    assert rec["size"] > arr.nbytes
    loaded = store.load_arrays(key)
    np.testing.assert_array_equal(loaded["measure"], arr)
    assert loaded["measure"].dtype == np.float32
    assert store.files(key) == ["image.png", "measure.npy", "notes/a.txt"]
    assert (store.path(key) / "notes" / "a.txt").read_text() == "hi"
    assert store.size_bytes() == rec["size"]
    # an npz is unpacked member by member
    key2 = store.key("sleep", SleepSpec(steps=3))
    tmp = store.new_temp_dir("t")
    np.savez(tmp / "arrays.npz", a=np.ones(2), b=np.zeros(3))
    store.commit(key2, tmp, {})
    assert sorted(store.load_arrays(key2)) == ["a", "b"]
    assert not tmp.exists()
    with pytest.raises(KeyError):
        store.load_arrays("sleep-missing")


def test_second_put_of_same_key_keeps_first(store):
    key = store.key("sleep", SleepSpec())
    store.put(key, arrays={"x": np.ones(3)})
    store.put(key, arrays={"x": np.zeros(3)})
    np.testing.assert_array_equal(store.load_arrays(key)["x"], np.ones(3))
    assert len(store.entries()) == 1
    assert list(store.tmp_dir.iterdir()) == []


def test_entries_newest_first_delete_clear_zip(store):
    keys = []
    for i in range(3):
        k = store.key("sleep", SleepSpec(tag=str(i)))
        store.put(k, arrays={"x": np.full(2, i)}, record={"created": 1000.0 + i})
        keys.append(k)
    assert [r["key"] for r in store.entries()] == keys[::-1]
    data = store.zip_bytes(keys[0])
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert f"{keys[0]}/x.npy" in names and f"{keys[0]}/record.json" in names
    assert store.delete(keys[0]) and not store.has(keys[0])
    assert not store.delete(keys[0])
    assert store.clear() == 2
    assert store.entries() == [] and store.size_bytes() == 0


def test_invalid_keys_and_file_names_rejected(store):
    for bad in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="^key"):
            store.has(bad)
    with pytest.raises(ValueError, match="^files"):
        store.put("sleep-x", files={"../escape.txt": b"no"})
    assert not store.has("sleep-x") and list(store.tmp_dir.iterdir()) == []


def test_failed_write_leaves_no_entry(store, monkeypatch):
    """An exception in the middle of put (disk full, bug) leaves neither an entry nor a temp folder."""
    key = store.key("sleep", SleepSpec())
    calls = {"n": 0}
    real_save = np.save

    def flaky_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", flaky_save)
    with pytest.raises(OSError, match="simulated"):
        store.put(key, arrays={"a": np.ones(4), "b": np.ones(4)})
    assert not store.has(key) and store.entries() == []
    assert list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("crash_point", ["mid_files", "before_rename"])
def test_process_killed_mid_write_leaves_no_entry(store, crash_point):
    """A writer that dies abruptly (os._exit: no cleanup runs) leaves only a temp folder, which is never read
    as an entry and is removed by the next cleanup because its pid is dead."""
    key = store.key("sleep", SleepSpec(tag=crash_point))
    script = textwrap.dedent(f"""
        import os, numpy as np
        import cache.store as cs
        store = cs.Store({str(store.root)!r})
        if {crash_point!r} == "mid_files":
            real = cs._fsync_file
            def dying(path):
                real(path)
                os._exit(9)          # killed after the first file of the entry hit the disk
            cs._fsync_file = dying
        else:
            real_rename = os.rename
            def dying_rename(a, b):
                os._exit(9)          # killed after record.json was written, before the rename
            os.rename = dying_rename
        store.put({key!r}, arrays={{"a": np.ones(1000), "b": np.ones(1000)}}, files={{"c.txt": "x" * 100}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    leftovers = list(store.tmp_dir.iterdir())
    assert len(leftovers) == 1  # the dead writer's folder, and nothing in entries/
    if crash_point == "before_rename":
        assert (leftovers[0] / "record.json").exists()  # complete files, yet never visible as an entry
    assert not store.has(key) and store.entries() == [] and store.record(key) is None
    with pytest.raises(KeyError):
        store.load_arrays(key)
    assert store.cleanup_temp() == [leftovers[0].name]
    assert list(store.tmp_dir.iterdir()) == []
    # and the key can be written normally afterwards
    store.put(key, arrays={"a": np.ones(3)})
    assert store.has(key)


def test_live_writers_temp_folder_is_not_cleaned(store):
    tmp = store.new_temp_dir("busy")  # this process is alive: its folder must survive cleanup
    (tmp / "f.txt").write_text("in progress")
    assert store.cleanup_temp() == []
    assert tmp.exists()


def test_lru_eviction_under_small_limit(tmp_path):
    store = Store(tmp_path / "lru", limit_bytes=3 * 8_500)
    payload = np.zeros(1000)  # 8000 bytes + header per entry: three fit, four do not
    keys = [store.key("sleep", SleepSpec(tag=str(i))) for i in range(5)]
    for k in keys[:3]:
        store.put(k, arrays={"x": payload})
        time.sleep(0.02)
    assert all(store.has(k) for k in keys[:3])
    store.load_arrays(keys[0])  # keys[0] is now the most recently used; keys[1] the least
    time.sleep(0.02)
    store.put(keys[3], arrays={"x": payload})
    assert not store.has(keys[1])
    assert store.has(keys[0]) and store.has(keys[2]) and store.has(keys[3])
    assert store.size_bytes() <= store.limit_bytes
    store.put(keys[4], arrays={"x": payload})
    assert not store.has(keys[2]) and store.has(keys[4]) and store.has(keys[0])


def test_single_entry_larger_than_limit_is_kept(tmp_path):
    store = Store(tmp_path / "tiny", limit_bytes=100)
    k = store.key("sleep", SleepSpec())
    store.put(k, arrays={"x": np.zeros(100)})
    assert store.has(k)  # the entry just written is never evicted by its own commit


def test_default_store_rereads_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("FRACTAL_LAB_CACHE_LIMIT_GB", "0.5")
    s = default_store()
    assert s.root == tmp_path / "a" and s.limit_bytes == int(0.5 * 1024**3)
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "b"))
    monkeypatch.delenv("FRACTAL_LAB_CACHE_LIMIT_GB")
    s = default_store()
    assert s.root == tmp_path / "b" and s.limit_bytes == 2 * 1024**3
    monkeypatch.setenv("FRACTAL_LAB_CACHE_LIMIT_GB", "lots")
    with pytest.raises(ValueError, match="^FRACTAL_LAB_CACHE_LIMIT_GB"):
        default_store()
    with pytest.raises(ValueError, match="^limit_bytes"):
        Store(tmp_path / "c", limit_bytes=0)


def test_record_json_is_plain_json(store):
    key = store.key("sleep", SleepSpec())
    path = store.put(key, arrays={"x": np.ones(1)}, record={"spec": SleepSpec().to_dict()})
    rec = json.loads((path / "record.json").read_text())
    assert SleepSpec.from_dict(rec["spec"]) == SleepSpec()
    assert os.path.getsize(path / "x.npy") > 0
