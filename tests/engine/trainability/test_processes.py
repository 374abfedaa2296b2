"""Worker processes of a grid (issue 12, items 20 and 21).

20: a grid job's process killed mid-grid (SIGKILL: no cleanup runs) takes its tile-pool processes with it;
    before, they kept computing with parent 1, forever.
21: ``run_grid`` called from a plain script without an ``if __name__ == "__main__":`` guard (the README's own
    example) is quiet and correct: no spawned child re-runs the script and prints a traceback; the result equals
    the threaded one. With the guard, worker processes are used.

Processes are found through /proc (no psutil here): a process's parent is field 4 of /proc/<pid>/stat.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of ``pid``, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), fields[19]


def _children(pid: int) -> dict[int, str]:
    """Live children of ``pid``: {child pid: its command line}."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == pid and st[0] != "Z":
                try:
                    out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    pass
    return out


def _alive(pid: int, start: str) -> bool:
    """Still running as the same process (a zombie waiting to be reaped counts as gone; so does a reused pid)."""
    st = _stat(pid)
    return st is not None and st[0] != "Z" and st[2] == start


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FRACTAL_LAB_THREADS": "2", "FRACTAL_LAB_GRID_PROCESSES": "1"}
    env.update(extra)
    return env


GRID_UNTIL_KILLED = textwrap.dedent("""
    import sys
    from engine.trainability import run_grid
    from engine.trainability.presets import preset

    def progress(fraction):
        if fraction > 0:
            print("computing", flush=True)

    if __name__ == "__main__":
        # far more than the test waits for: it is killed while its tiles run
        run_grid(preset("tanh", resolution=(256, 256), steps=2000), progress=progress, device="cpu")
        print("finished", flush=True)
""")


def test_killing_a_grid_process_takes_its_pool_workers_with_it(tmp_path):
    script = tmp_path / "grid_job.py"
    script.write_text(GRID_UNTIL_KILLED)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    workers: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            kids = {pid: cmd for pid, cmd in _children(proc.pid).items() if "spawn_main" in cmd}
            if len(kids) >= 2:
                workers = kids
                break
            time.sleep(0.2)
        assert len(workers) >= 2, f"no pool started: {proc.stderr.read() if proc.poll() is not None else ''}"
        assert proc.stdout.readline().strip() == "computing"  # the workers are inside their tiles
        starts = {pid: _stat(pid)[2] for pid in workers if _stat(pid) is not None}
        descendants = {**starts, **{c: _stat(c)[2] for pid in starts for c in _children(pid) if _stat(c)}}
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p, s) for p, s in descendants.items()):
            time.sleep(0.1)
        left = [p for p, s in descendants.items() if _alive(p, s)]
        assert not left, f"pool processes {left} outlived their killed parent (now parent {_stat(left[0])[1]})"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:  # never leave orphans computing, even when the test fails
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.stdout.close()
        proc.stderr.close()


README_EXAMPLE = textwrap.dedent("""
    import sys
    print("top level ran as", __name__, flush=True)
    import numpy as np
    from engine.trainability import run_grid
    from engine.trainability.presets import preset

    spec = preset("tanh", resolution=(12, 10), steps=60)
    {call}
""")
UNGUARDED = "np.save(sys.argv[1], run_grid(spec, device='cpu').measure)"
GUARDED = "if __name__ == '__main__':\n        np.save(sys.argv[1], run_grid(spec, device='cpu').measure)"


def _run_script(tmp_path: Path, call: str, name: str) -> tuple[subprocess.CompletedProcess, np.ndarray]:
    script = tmp_path / f"{name}.py"
    script.write_text(README_EXAMPLE.replace("{call}", call))
    out = tmp_path / f"{name}.npy"
    proc = subprocess.run([sys.executable, str(script), str(out)], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc, np.load(out)


@pytest.fixture(scope="module")
def threaded():
    """The same grid on threads, in this process."""
    from engine.trainability import run_grid
    from engine.trainability.presets import preset

    old = {k: os.environ.get(k) for k in ("FRACTAL_LAB_GRID_PROCESSES", "FRACTAL_LAB_THREADS")}
    os.environ.update(FRACTAL_LAB_GRID_PROCESSES="0", FRACTAL_LAB_THREADS="2")
    try:
        return run_grid(preset("tanh", resolution=(12, 10), steps=60), device="cpu").measure
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_a_script_without_the_main_guard_is_quiet_and_right(tmp_path, threaded):
    proc, measure = _run_script(tmp_path, UNGUARDED, "unguarded")
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    assert proc.stdout.count("top level ran as") == 1, proc.stdout  # no spawned child re-ran the script
    np.testing.assert_array_equal(measure, threaded)


def test_a_script_with_the_main_guard_uses_worker_processes(tmp_path, threaded):
    proc, measure = _run_script(tmp_path, GUARDED, "guarded")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "top level ran as __mp_main__" in proc.stdout, proc.stdout  # workers imported it, guard kept them out
    np.testing.assert_array_equal(measure, threaded)


def test_main_guard_detection(tmp_path):
    from engine.trainability.executor import _inside_main_guard

    src = textwrap.dedent("""
        a = 1
        if __name__ == "__main__":
            b = 2
            c = 3
        else:
            d = 4
        if "__main__" == __name__:
            e = 5
        if __name__ != "__main__":
            f = 6
    """)
    path = tmp_path / "script.py"
    path.write_text(src)
    lines = {name: i + 1 for i, line in enumerate(src.splitlines()) for name in "abcdef"
             if line.strip().startswith(f"{name} =")}
    assert [_inside_main_guard(str(path), lines[n]) for n in "abcdef"] == [False, True, True, False, True, False]
    assert not _inside_main_guard(str(tmp_path / "missing.py"), 1)
