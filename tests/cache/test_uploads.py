"""cache.uploads: user dataset files kept by content hash under the store root, inside the store's size limit."""

from __future__ import annotations

import os
import time

import pytest

from cache import Store, uploads


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store", limit_bytes=10_000)


def test_an_upload_is_kept_once_by_content_and_found_by_id(store):
    kept = uploads.save(b"x" * 100, "my data (1).npz", name="npz", summary={"train": 3}, store=store)
    assert uploads.is_id(kept.id) and kept.id == uploads.upload_id(b"x" * 100)
    assert kept.path.read_bytes() == b"x" * 100 and kept.path.name == "my_data__1_.npz"
    assert kept.path.is_relative_to(store.root)  # a job's own process can open it
    again = uploads.save(b"x" * 100, "other name.npz", name="npz", summary={}, store=store)
    assert again.id == kept.id
    found = uploads.find(kept.id, store)
    assert found is not None and found.name == "npz" and found.original_name == "other name.npz"
    assert uploads.id_of_path(found.path) == kept.id and uploads.id_of_path("/elsewhere/a.npz") is None
    assert uploads.find("0123456789abcdef", store) is None
    assert uploads.find("../../etc", store) is None  # not an id: never a path


def test_uploads_and_results_share_the_store_limit(store):
    old = uploads.save(b"a" * 4000, "a.npz", name="npz", summary={}, store=store)
    past = time.time() - 100
    os.utime(store.root / "uploads" / old.id / "meta.json", (past, past))  # used long ago
    newer = uploads.save(b"b" * 4000, "b.npz", name="npz", summary={}, store=store)
    store.put("grid-abc", files={"r.bin": b"r" * 4000})  # results count too
    third = uploads.save(b"c" * 1500, "c.npz", name="npz", summary={}, store=store)
    assert uploads.find(old.id, store) is None  # the least recently used upload went
    assert uploads.find(newer.id, store) is not None and uploads.find(third.id, store) is not None
    assert uploads.size_bytes(store) + store.size_bytes() <= store.limit_bytes
    with pytest.raises(ValueError, match=r"^upload: 'huge.npz' is .* over the store's size limit"):
        uploads.save(b"h" * 20_000, "huge.npz", name="npz", summary={}, store=store)
