"""runs.thumbnail: a picture for every stored result, from its kind's thumbnail function or the store's file."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

import runs
from cache import default_store
from runs import kinds
from tests import runs_fixture_tasks as fx
from tests.runs_fixture_tasks import SleepSpec


def _png(w: int = 5, h: int = 3) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_thumbnail_comes_from_the_kinds_function(env):
    job = runs.submit(env, SleepSpec(steps=7, step_s=0.0, tag="thumb"))
    assert runs.wait(job, 30).state == "done"
    before = os.stat(default_store().path(job, touch=False) / ".last_access").st_mtime_ns
    data = runs.thumbnail(job)
    assert data is not None and Image.open(io.BytesIO(data)).size == (7, 4)  # fx.thumbnail: one pixel per step
    after = os.stat(default_store().path(job, touch=False) / ".last_access").st_mtime_ns
    assert after == before  # showing a picture in a list is not a use of the result (LRU)
    assert runs.thumbnail("sleep-0000000000000000none") is None


def test_thumbnail_falls_back_to_the_stores_picture(env):
    store = default_store()
    kinds.register_task("plain", fx.MODULE, "SleepSpec")  # a kind without a thumbnail function
    kinds.register_task("broken", fx.MODULE, "SleepSpec", thumbnail="no_such_function")
    try:
        picture = _png()
        with_picture = store.key("plain", SleepSpec(tag="a"))
        store.put(with_picture, files={"image.png": picture})
        assert runs.thumbnail(with_picture) == picture
        without = store.key("plain", SleepSpec(tag="b"))
        store.put(without, files={"notes.txt": "no picture"})
        assert runs.thumbnail(without) is None
        broken = store.key("broken", SleepSpec(tag="c"))
        store.put(broken, files={"preview.png": picture})
        assert runs.thumbnail(broken) == picture  # its function cannot be found: the file still shows
        unknown = store.key("gone_kind", SleepSpec(tag="d"))  # a result of a kind no longer registered
        store.put(unknown, files={"image.png": picture})
        assert runs.thumbnail(unknown) == picture
    finally:
        kinds.KINDS.pop("plain")
        kinds.KINDS.pop("broken")
