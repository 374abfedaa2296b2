"""The result store: spec hash -> a folder of result files, written atomically, evicted least-recently-used.
Code lives here; data in the git-ignored ``cache/data`` (or ``$FRACTAL_LAB_CACHE``). See :mod:`cache.store`."""

from cache.settings import DEFAULT_LIMIT_GB, DEFAULT_ROOT
from cache.store import Store, default_store, dir_size, exclusive_lock, human_size, pid_alive

__all__ = ["DEFAULT_LIMIT_GB", "DEFAULT_ROOT", "Store", "default_store", "dir_size", "exclusive_lock", "human_size", "pid_alive"]
