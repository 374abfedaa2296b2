"""Session-wide test setup: results go to a throw-away store, never the user's cache/data."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def _isolated_store(tmp_path_factory):
    """Point the store (and so the job registry) at a temporary folder for the whole test session."""
    root = tmp_path_factory.mktemp("fractal-lab-store")
    old = os.environ.get("FRACTAL_LAB_CACHE")
    os.environ["FRACTAL_LAB_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("FRACTAL_LAB_CACHE", None)
    else:
        os.environ["FRACTAL_LAB_CACHE"] = old


@pytest.fixture
def stop_leftover_jobs():
    """Views a test opens start jobs; cancel what is still running afterwards, so the next test's job is not
    queued behind it. Modules that open the explorer use it with ``pytestmark = usefixtures(...)``."""
    yield
    import runs  # imported late: the store's location is set by _isolated_store first

    for s in runs.list_jobs():
        if s.active:
            runs.cancel(s.id)
