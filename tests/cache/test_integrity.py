"""The store under hostile conditions (issue 12, items 7, 14, 15, 17, 18, 19): keys no file system can hold,
files damaged on disk, a corrupt ``record.json``, readers racing eviction, a relative store path, bad knobs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from cache import Store, default_store
from engine.errors import DamagedResult
from tests.runs_fixture_tasks import SleepSpec

ROOT = Path(__file__).resolve().parents[2]



def _flip(path: Path, offset_from_end: int = 9) -> None:
    """One bit of the data near the end (past any header): the file still parses, its numbers are wrong."""
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


def _safetensors_bytes() -> bytes:
    from safetensors.numpy import save

    return save({"w": np.arange(64, dtype=np.float32).reshape(8, 8)}, metadata={"format": "np"})


# ---------------------------------------------------------------------------------------------- item 7: keys
@pytest.mark.parametrize("bad", ["x" * 300, "sleep-" + "a" * 195, "a b", "sleep-é", "a:b", "..", "a\nb"])
def test_keys_a_file_system_cannot_hold_are_named_errors(store, bad):
    for call in (store.has, store.record, store.path, store.verify, store.delete, store.files):
        with pytest.raises(ValueError, match=r"^key: must be 1 to 200 characters"):
            call(bad)
    with pytest.raises(ValueError, match=r"^key: must be 1 to 200 characters"):
        store.put(bad, arrays={"x": np.ones(1)})
    assert list(store.entries_dir.iterdir()) == [] and list(store.tmp_dir.iterdir()) == []


def test_a_kind_too_long_for_a_key_is_a_named_error(store):
    with pytest.raises(ValueError, match=r"^key: must be 1 to 200 characters"):
        store.key("k" * 250, SleepSpec())
    assert len(store.key("k" * 170, SleepSpec())) <= 200


# ----------------------------------------------------------------------------------------- item 14: checksums
def test_record_holds_the_sha256_of_every_file(store):
    key = store.key("sleep", SleepSpec())
    path = store.put(key, arrays={"measure": np.arange(10.0)}, files={"notes/a.txt": "hi", "image.png": b"png"})
    rec = json.loads((path / "record.json").read_text())
    assert set(rec["sha256"]) == {"measure.npy", "notes/a.txt", "image.png"}
    for name, digest in rec["sha256"].items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest
    assert store.verify(key) == path
    assert store.verify("sleep-absent") is None


def test_a_bitflipped_array_is_never_served(store):
    key = store.key("sleep", SleepSpec(tag="flip"))
    path = store.put(key, arrays={"measure": np.linspace(0, 1, 500)})
    _flip(path / "measure.npy")
    with pytest.raises(DamagedResult, match=r"^measure\.npy: fails its checksum") as info:
        store.verify(key)
    assert info.value.path == str(path / "measure.npy")
    with pytest.raises(DamagedResult, match="measure.npy"):
        store.load_arrays(key)
    with pytest.raises(DamagedResult, match="measure.npy"):
        store.zip_bytes(key)


def test_a_bitflipped_model_is_never_served(store):
    key = store.key("sleep", SleepSpec(tag="model"))
    path = store.put(key, files={"model.safetensors": _safetensors_bytes(), "preview.png": b"\x89PNG"})
    _flip(path / "model.safetensors")
    with pytest.raises(DamagedResult, match=r"^model\.safetensors: fails its checksum"):
        store.verify(key)
    with pytest.raises(DamagedResult, match="model.safetensors"):
        store.zip_bytes(key)
    assert store.thumbnail(key) is None  # a damaged entry has no picture to show


def test_a_missing_file_is_damage(store):
    key = store.key("sleep", SleepSpec(tag="missing"))
    path = store.put(key, arrays={"a": np.ones(3), "b": np.zeros(3)})
    (path / "b.npy").unlink()
    with pytest.raises(DamagedResult, match=r"^b\.npy: missing"):
        store.load_arrays(key)


def test_verification_is_remembered_until_a_file_changes(store, monkeypatch):
    from cache import integrity

    key = store.key("sleep", SleepSpec(tag="cached"))
    path = store.put(key, arrays={"measure": np.arange(100.0)}, files={"model.safetensors": _safetensors_bytes()})
    hashed: list[str] = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    store.verify(key)
    first = len(hashed)
    assert first == 2
    for _ in range(3):  # a page rerun: no file changed, nothing is hashed again
        store.verify(key)
        store.load_arrays(key)
    assert len(hashed) == first
    _flip(path / "measure.npy")  # a file changed: checked again, and caught
    with pytest.raises(DamagedResult):
        store.verify(key)
    assert len(hashed) > first


def test_entries_stored_before_checksums_stay_readable(store):
    key = store.key("sleep", SleepSpec(tag="legacy"))
    path = store.put(key, arrays={"measure": np.arange(50.0)}, files={"image.png": b"\x89PNG\r\n\x1a\nIEND\xaeB`\x82"})
    rec = json.loads((path / "record.json").read_text())
    del rec["sha256"]
    (path / "record.json").write_text(json.dumps(rec))
    np.testing.assert_array_equal(store.load_arrays(key)["measure"], np.arange(50.0))  # unverified, still served
    assert store.thumbnail(key) == path / "image.png"
    data = (path / "measure.npy").read_bytes()
    (path / "measure.npy").write_bytes(data[: len(data) - 40])  # but a truncated file is still caught
    with pytest.raises(DamagedResult, match=r"^measure\.npy: truncated"):
        store.load_arrays(key)
    assert store.thumbnail(key) is None


# -------------------------------------------------------------------------------- item 15: a corrupt record
@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b"\xff\xfe\x00"])
def test_a_corrupt_record_counts_as_absent_and_is_replaced(store, content):
    key = store.key("sleep", SleepSpec(tag="corrupt"))
    path = store.put(key, arrays={"values": np.ones(1000)})
    (path / "record.json").write_bytes(content)
    assert not store.has(key) and store.record(key) is None
    assert "record.json" in store.damage(key)
    with pytest.raises(DamagedResult, match="record.json"):
        store.verify(key)
    listed = [r for r in store.entries() if r["key"] == key]  # counted, so it can be evicted
    assert len(listed) == 1 and listed[0]["damaged"] and listed[0]["size"] >= 8000
    assert store.size_bytes() >= 8000
    # computing it again replaces the damaged folder
    store.put(key, arrays={"values": np.full(1000, 2.0)})
    assert store.has(key) and store.damage(key) is None
    np.testing.assert_array_equal(store.load_arrays(key)["values"], np.full(1000, 2.0))
    assert len(store.entries()) == 1


def test_a_damaged_folder_is_evicted_not_leaked(tmp_path):
    store = Store(tmp_path / "s", limit_bytes=30_000)
    broken = store.key("sleep", SleepSpec(tag="broken"))
    path = store.put(broken, arrays={"values": np.zeros(2000)})  # 16 kB
    (path / "record.json").write_text("")
    os.utime(path / ".last_access", (1, 1))  # the least recently used
    for i in range(3):
        store.put(store.key("sleep", SleepSpec(tag=str(i))), arrays={"values": np.zeros(1000)})
    assert not path.exists()
    assert store.size_bytes() <= store.limit_bytes


# ------------------------------------------------------------------------------------- item 17: read leases
def test_eviction_skips_an_entry_while_it_is_read(tmp_path):
    store = Store(tmp_path / "s", limit_bytes=20_000)
    old = store.key("sleep", SleepSpec(tag="old"))
    store.put(old, arrays={"values": np.zeros(1000)})
    with store.reading(old, touch=False) as folder:
        os.utime(folder / ".last_access", (1, 1))  # first in line for eviction
        for i in range(3):
            store.put(store.key("sleep", SleepSpec(tag=str(i))), arrays={"values": np.ones(1000)})
        assert store.has(old)
        assert np.load(folder / "values.npy").shape == (1000,)  # still there to be read
    store.put(store.key("sleep", SleepSpec(tag="after")), arrays={"values": np.ones(1000)})
    assert not store.has(old)  # once let go, it is the first to go


def test_concurrent_readers_never_see_an_entry_vanish_mid_read(tmp_path):
    """Readers in this process read whole entries while another process fills the store far past its limit:
    every read returns the complete entry or finds it absent (KeyError); none fails half-way."""
    root = tmp_path / "race"
    n_keys, n_files, limit = 40, 20, 100_000  # an entry is ~33 kB: three fit, each commit evicts one
    store = Store(root, limit_bytes=limit)
    keys = [store.key("sleep", SleepSpec(tag=f"r{i}")) for i in range(n_keys)]
    for i, k in enumerate(keys[:3]):
        store.put(k, arrays={f"a{j:02d}": np.full(200, float(i)) for j in range(n_files)})
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import numpy as np
        from cache import Store
        store = Store({str(root)!r}, limit_bytes={limit})
        keys = {keys!r}
        for rnd in range(2):
            for i, k in enumerate(keys):
                if not store.has(k):
                    store.put(k, arrays={{f"a{{j:02d}}": np.full(200, float(i)) for j in range({n_files})}})
    """)], cwd=ROOT)
    failures: list[str] = []
    counts = {"ok": 0, "absent": 0}
    lock = threading.Lock()

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        index = {k: i for i, k in enumerate(keys)}
        while writer.poll() is None:
            present = [index[name] for name in os.listdir(store.entries_dir) if name in index]
            if not present:
                continue
            i = present[int(rng.integers(len(present)))]  # what a list of runs offers: entries there just now
            try:
                arrays = store.load_arrays(keys[i])
                assert len(arrays) == n_files and all(float(a[0]) == i for a in arrays.values()), "incomplete"
                with lock:
                    counts["ok"] += 1
            except KeyError:
                with lock:
                    counts["absent"] += 1
            except Exception as exc:  # noqa: BLE001 - every other outcome is the failure under test
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert writer.wait(timeout=60) == 0
    assert counts["ok"] > 20, counts
    assert failures == [], f"{len(failures)} of {len(failures) + counts['ok']} reads failed: {failures[:3]}"


# -------------------------------------------------------------------------------- items 18, 19: the knobs
def test_a_relative_store_path_is_made_absolute_once(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    monkeypatch.setenv("FRACTAL_LAB_CACHE", "rel-store")
    first = default_store()
    assert first.root == tmp_path / "a" / "rel-store" and first.root.is_absolute()
    monkeypatch.chdir(tmp_path / "b")  # a later chdir does not move the store
    assert default_store().root == first.root
    assert not (tmp_path / "b" / "rel-store").exists()


def test_a_store_path_that_is_a_file_is_a_named_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "file"))
    with pytest.raises(ValueError, match=r"^FRACTAL_LAB_CACHE: must be a folder this process can create"):
        default_store()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-1", "0", "1e-300", "lots", "1" * 5000])
def test_the_store_limit_knob_refuses_hostile_values(value, monkeypatch, tmp_path):
    monkeypatch.setenv("FRACTAL_LAB_CACHE", str(tmp_path / "s"))
    monkeypatch.setenv("FRACTAL_LAB_CACHE_LIMIT_GB", value)
    with pytest.raises(ValueError, match=r"^FRACTAL_LAB_CACHE_LIMIT_GB: must be a number in \[0.001, 100000\], got"):
        default_store()
