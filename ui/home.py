"""What the home page says about this server: where its result store is."""

from __future__ import annotations

import os

from cache.settings import cache_root


def store_location() -> tuple[str, bool]:
    """The result store's folder as this server uses it, and whether ``FRACTAL_LAB_CACHE`` chose it (else it is
    the default, ``cache/data/`` in the repository)."""
    return str(cache_root()), bool(os.environ.get("FRACTAL_LAB_CACHE", "").strip())
