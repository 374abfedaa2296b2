"""Command-line flags generated from a spec's fields, so a CLI never restates a range, a choice or a help text.

``add_spec_arguments(parser, GridSpec)`` adds ``--field-name`` for every field declared with
:func:`engine.specs.spec_field`; ``overrides(parser, GridSpec, args)`` returns only the flags the user gave,
checked against the field's range (a bad value exits with argparse's one-line message and code 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from engine.specs import FieldInfo, fields_of

NONE_WORDS = ("none", "default")


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
