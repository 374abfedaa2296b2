"""``python -m runs list|status ID|cancel ID|run ID|delete ID``: the background jobs from a shell (``run`` is
what a worker process executes)."""

from __future__ import annotations

import json
import sys

import runs
from engine.cli import ArgumentParser, cli_main
from runs import records
from runs.kinds import title

PROG = "python -m runs"
MAX_ID_BYTES = 200  # job folders add a suffix or two; a file name holds 255 bytes


def _row(st: runs.JobStatus) -> str:
    eta = f"eta {st.eta_s:.0f}s" if st.eta_s else ""
    return f"{st.id:40s} {st.state:9s} {st.fraction * 100:5.1f}% {eta:10s} {title(st.kind)}  {st.message}".rstrip()


def _check_id(job_id: str) -> None:
    """A job id is a store key: refused here when it could name a path outside the store or is longer than a
    file name may be (``OSError: File name too long`` otherwise, deep in the registry)."""
    records.store().check_key(job_id)
    if len(job_id.encode("utf-8", "surrogateescape")) > MAX_ID_BYTES:
        raise ValueError(f"key: a job id has at most {MAX_ID_BYTES} characters, got {len(job_id)}")


@cli_main(PROG)
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description="Fractal Lab's background jobs.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="every job, newest first")
    for name, text in (("status", "one job's status as JSON"), ("cancel", "ask a job to stop"),
                       ("run", "run a job in this process (what the worker does)"),
                       ("delete", "forget a job and its stored result")):
        sub.add_parser(name, help=text).add_argument("id")
    args = parser.parse_args(argv)
    if args.cmd != "list":
        _check_id(args.id)
    if args.cmd == "list":
        for st in runs.list_jobs():
            print(_row(st))
        return 0
    if args.cmd == "status":
        st = runs.status(args.id)
        if st is None:
            print(f"no job {args.id!r}", file=sys.stderr)
            return 1
        print(json.dumps(st.to_dict(), indent=1, default=str))
        return 0
    if args.cmd == "cancel":
        st = runs.cancel(args.id)
        print(_row(st) if st else f"no job {args.id!r}")
        return 0 if st else 1
    if args.cmd == "delete":
        return 0 if runs.delete(args.id) else 1
    return runs.run_worker(args.id)


if __name__ == "__main__":
    sys.exit(main())
