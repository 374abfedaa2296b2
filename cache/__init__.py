"""The result store (code here; data in the git-ignored ``cache/data`` or ``$FRACTAL_LAB_CACHE``).

See :mod:`cache.store` for the layout, atomic writes and LRU eviction::

    from cache import default_store
    store = default_store()
    key = store.key("grid", spec)          # f"grid-{spec.content_hash()}"
    if store.has(key):
        arrays = store.load_arrays(key)
"""

from cache.store import (
    DEFAULT_LIMIT_GB,
    DEFAULT_ROOT,
    Store,
    default_store,
    dir_size,
    human_size,
    pid_alive,
    write_json_atomic,
)

__all__ = [
    "DEFAULT_LIMIT_GB",
    "DEFAULT_ROOT",
    "Store",
    "default_store",
    "dir_size",
    "human_size",
    "pid_alive",
    "write_json_atomic",
]
