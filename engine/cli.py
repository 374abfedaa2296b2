"""Command-line flags generated from a spec's fields, so a CLI never restates a range, a choice or a help text.

``add_spec_arguments(parser, GridSpec)`` adds ``--field-name`` for every field declared with
:func:`engine.specs.spec_field`; ``overrides(parser, GridSpec, args)`` returns only the flags the user gave,
checked against the field's range (a bad value exits with argparse's one-line message and code 2).

Every CLI of the lab (``python -m engine.fractalnet|engine.trainability|engine.kronecker|runs``) builds its
parser with :class:`ArgumentParser` and wraps its ``main`` in :func:`cli_main`, so any invalid input (a bad
flag, a spec field out of range, a missing or unwritable path, a checkpoint that does not fit) ends the same
way: one line ``<prog>: error: …`` on stderr and exit code 2, no traceback. A real bug (any other exception)
still shows its traceback; ``FRACTAL_LAB_DEBUG=1`` shows it for the errors above too.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from engine.specs import FieldInfo, fields_of

NONE_WORDS = ("none", "default")
MAX_MESSAGE = 400  # characters of an error line (a message may quote a 100 kB argument)


class CliExit(SystemExit):
    """``SystemExit(2)`` whose ``str()`` is the message already printed (a caller in-process can read it)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(code)
        self.message = message

    def __str__(self) -> str:
        return self.message


def error_line(prog: str, message: object) -> str:
    """Print ``prog: error: message`` as one line on stderr (newlines folded, cut to MAX_MESSAGE); return it."""
    text = " ".join(str(message).split()) or "invalid input"
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    sys.stderr.write(f"{prog}: error: {text}\n")
    sys.stderr.flush()
    return text


def fail(prog: str, message: object) -> NoReturn:
    """:func:`error_line`, then exit with code 2 (:class:`CliExit`), as argparse does."""
    raise CliExit(error_line(prog, message))


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (``prog: error: … (see --help)``), the usage one ``--help`` away;
    sub-commands made by ``add_subparsers`` are of this class too."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see {self.prog} --help)")


def cli_main(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a CLI's ``main(argv=None) -> int``: a ``ValueError`` (specs, datasets, checkpoints, damaged
    results) or ``OSError`` (files and folders) becomes :func:`error_line`'s one line and the return code 2
    (``sys.exit(main())`` makes it the exit code; argparse's own errors exit 2 directly); Ctrl-C exits 130."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: Iterable[str] | None = None) -> int:
            try:
                return main(argv)
            except (ValueError, OSError) as exc:
                if os.environ.get("FRACTAL_LAB_DEBUG", "").strip() not in ("", "0"):
                    raise
                error_line(prog, exc)
                return 2
            except KeyboardInterrupt:
                sys.stderr.write(f"{prog}: interrupted\n")
                raise SystemExit(130) from None

        return run

    return wrap


def path_arg(text: str) -> str:
    """argparse ``type=`` of a path flag: refuses an empty path, which would mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a path, got an empty one")
    if "\0" in text:
        raise argparse.ArgumentTypeError("a path cannot contain a NUL character")
    return text


def device_arg(text: str) -> str:
    """argparse ``type=`` of ``--device``: ``auto``, ``cpu``, ``cuda``/``cuda:N`` that this machine has."""
    from engine.device import resolve_device

    try:
        resolve_device(text)
    except (ValueError, RuntimeError) as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("device: ")) from None
    return text


def count_arg(lo: int, hi: int) -> Callable[[str], int]:
    """argparse ``type=`` of an integer flag in ``[lo, hi]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in [{lo}, {hi}], got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in [{lo}, {hi}], got {value}")
        return value

    parse.__name__ = "int"
    return parse


def writable_dir(flag: str, text: str) -> Path:
    """The output folder ``text`` of ``flag``, created if missing, after proving a file can be written there
    (``ValueError`` for an empty path, a file, or a place that cannot be written: /proc, read-only, …)."""
    if not str(text).strip():
        raise ValueError(f"{flag}: must name a folder, got an empty path")
    out = Path(text)
    try:
        if out.exists() and not out.is_dir():
            raise ValueError(f"{flag}: {text} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ValueError(f"{flag}: cannot write into {text} ({exc.strerror or exc})") from None
    return out


def writable_file(flag: str, text: str) -> Path:
    """The output file ``text`` of ``flag``: not a folder, in an existing folder that can be written."""
    if not str(text).strip():
        raise ValueError(f"{flag}: must name a file, got an empty path")
    out = Path(text)
    try:
        if out.is_dir():
            raise ValueError(f"{flag}: {text} is a folder; give a file name")
        if not out.parent.is_dir():
            raise ValueError(f"{flag}: the folder {out.parent} does not exist")
        if not os.access(out.parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
            raise ValueError(f"{flag}: cannot write {text} (permission denied)")
    except OSError as exc:
        raise ValueError(f"{flag}: cannot write {text} ({exc.strerror or exc})") from None
    return out


def _scalar_parser(info: FieldInfo):
    def parse(text: str) -> Any:
        if info.optional and text.strip().lower() in NONE_WORDS:
            return None
        try:
            if info.kind is int:
                return int(text)
            if info.kind is float:
                return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{info.name}: must be {info.allowed()}, got {text!r}") from None
        return text

    parse.__name__ = info.kind.__name__
    return parse


def add_spec_arguments(parser: argparse.ArgumentParser, spec_cls: type, *, exclude: Iterable[str] = (),
                       defaults: Any = None) -> None:
    """Add one flag per CLI-visible field of ``spec_cls`` (``defaults``: a spec whose values the help shows)."""
    skip = set(exclude)
    group = parser.add_argument_group(f"{spec_cls.__name__} fields")
    for info in fields_of(spec_cls):
        if info.name in skip or not info.meta.cli:
            continue
        shown = getattr(defaults, info.name) if defaults is not None else info.default
        text = f"{info.meta.help} Allowed: {info.allowed()}. Default: {shown}.".strip()
        text = text.replace("%", "%%")
        if info.kind is bool:
            group.add_argument(info.flag, dest=info.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=text)
            continue
        kwargs: dict[str, Any] = dict(dest=info.name, type=_scalar_parser(info), default=argparse.SUPPRESS,
                                      help=text, metavar=info.name.upper())
        if info.length:
            kwargs["nargs"] = info.length
        if info.meta.choices is not None and not info.length:
            kwargs["choices"] = list(info.meta.choices) + ([None] if info.optional else [])
            kwargs["metavar"] = "{" + ",".join(str(c) for c in info.meta.choices) + "}"
        group.add_argument(info.flag, **kwargs)


def overrides(parser: argparse.ArgumentParser, spec_cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``spec_cls`` given on the command line, each checked (``parser.error`` on a bad one)."""
    out = {}
    for info in fields_of(spec_cls):
        if info.name in vars(args):
            try:
                out[info.name] = info.check(getattr(args, info.name))
            except ValueError as exc:
                parser.error(str(exc))
    return out


def build_spec(parser: argparse.ArgumentParser, make, **kwargs: Any) -> Any:
    """``make(**kwargs)`` (a spec class or a preset function); a ``ValueError`` becomes argparse's exit 2."""
    try:
        return make(**kwargs)
    except ValueError as exc:
        parser.error(str(exc))
