"""The store as a source of already computed pixels for the engine (its ``GridSource`` protocol).

The engine never imports the store; a task that declares a ``sources`` parameter gets a :class:`StoredGrids`
from the worker, and takes from it what it need not train again: a whole grid stored under the same key
(:meth:`StoredGrids.exact`, e.g. a zoom video's keyframe that the explorer already computed) or the stored grids
of the same experiment whose pixels may coincide with the new grid's (:meth:`StoredGrids.similar`, e.g. the
level above a 2x zoom click). Every entry is checked against its checksums before a pixel is served: a damaged
entry is skipped, never used. Reading counts as a use of an entry (its LRU clock) only when pixels are taken.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import numpy as np

from cache import Store
from engine.errors import DamagedResult
from runs import records

log = logging.getLogger(__name__)

KIND = "grid"
MAX_SIMILAR = 64  # stored grids looked at per request, newest first: a long-used store must not slow a click


class StoredGrids:
    """The engine's ``GridSource`` over the result store: ``similar(spec)`` and ``exact(spec)``.

    ``taken`` lists the keys whose pixels were served, in order (the job's log and the tests read it)."""

    def __init__(self, store: Store | None = None, limit: int = MAX_SIMILAR):
        self.store = store if store is not None else records.store()
        self.limit = int(limit)
        self.taken: list[str] = []

    def __repr__(self) -> str:
        return f"StoredGrids({self.store.root}, limit={self.limit})"

    # ------------------------------------------------------------------------------------------ protocol
    def exact(self, spec: Any) -> np.ndarray | None:
        """The measure of the stored grid with ``spec``'s own key (bit for bit what computing it would give),
        or None when there is none or it is damaged."""
        key = self.store.key(KIND, spec)
        if not self.store.has(key):
            return None
        files = self._load(key)
        if files is None or files.measure.shape != tuple(spec.shape):
            return None
        self._take(key)
        return files.measure

    def similar(self, spec: Any) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        """``(stored spec, measure, computed)`` of stored grids of the same experiment whose view overlaps
        ``spec``'s, newest first, at most :attr:`limit` looked at, and only those sharing at least one exactly
        computed pixel with ``spec`` (``reuse.coinciding_pixels``)."""
        from engine.trainability.reuse import coinciding_pixels

        own = self.store.key(KIND, spec)
        for key, stored_spec in self.candidates(spec):
            if key == own:
                continue
            files = self._load(key)
            if files is None:
                continue
            computed = files.computed  # all True for folders written before masks existed
            _, mask = coinciding_pixels(spec, files.spec, files.measure, computed)
            if not np.any(mask):  # overlapping, yet no pixel in common: nothing taken, no use
                continue
            self._take(key)
            yield files.spec, files.measure, computed

    # ----------------------------------------------------------------------------------------- internals
    def candidates(self, spec: Any) -> list[tuple[str, Any]]:
        """(key, spec) of stored grids of ``spec``'s experiment whose view overlaps it, newest first, at most
        :attr:`limit`: read from the entries' records only (no result file is opened)."""
        from engine.trainability.reuse import overlaps  # here: importing runs must not import torch
        from engine.trainability.spec import GridSpec

        out = []
        for rec in self.store.entries():
            if len(out) >= self.limit:
                break
            if rec.get("damaged") or rec.get("kind") != KIND or not isinstance(rec.get("spec"), dict):
                continue
            try:
                stored = GridSpec.from_dict(rec["spec"])
            except (TypeError, ValueError, KeyError):  # a spec of an older engine, or a damaged record
                continue
            if overlaps(spec, stored):  # the same experiment, and the views share points
                out.append((rec["key"], stored))
        return out

    def _load(self, key: str) -> Any | None:
        """The entry's files, checked against their checksums (None when gone, damaged or unreadable)."""
        from engine.trainability import results

        try:
            with self.store.reading(key, touch=False) as folder:
                return results.load(folder)
        except KeyError:
            return None
        except (DamagedResult, ValueError, OSError) as exc:
            log.warning("stored grid %s skipped: %s: %s", key, type(exc).__name__, exc)
            return None

    def _take(self, key: str) -> None:
        self.taken.append(key)
        self.store.path(key)  # pixels taken: a use, for the LRU clock

