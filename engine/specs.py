"""Spec dataclasses that round-trip through JSON, hash stably and describe their own fields.

One frozen dataclass drives a capability from the page, the CLI, the job runner and the store key. Each field
is declared once with :func:`spec_field` (range, choices, help), so widgets, URL parameters and CLI flags are
generated from it instead of being restated, and drifting, in every place that offers the setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

from engine import ENGINE_VERSION

T = TypeVar("T", bound="SpecMixin")
_META = "fractal_lab"


@dataclasses.dataclass(frozen=True)
class FieldMeta:
    """What a user may set a field to, and how to explain it: the one declaration behind widget, link and flag.

    ``range`` is inclusive ``(lo, hi)`` for numbers (each element of a pair); ``choices`` lists the allowed
    values of a text field; ``label`` and ``help`` are the words shown to a user; ``step``/``log`` only style a
    widget. ``cli=False`` keeps a field out of generated CLI flags (e.g. one a command sets itself); ``url``
    names its link parameter when that differs from the field name (old links keep opening).
    """

    help: str = ""
    label: str | None = None
    range: tuple[float, float] | None = None
    choices: tuple[Any, ...] | None = None
    step: float | None = None
    log: bool = False
    cli: bool = True
    ui: bool = True
    url: str | None = None


def spec_field(default: Any = dataclasses.MISSING, *, help: str = "", label: str | None = None,
               range: tuple[float, float] | None = None, choices: Sequence[Any] | None = None,
               step: float | None = None, log: bool = False, cli: bool = True, ui: bool = True,
               url: str | None = None) -> Any:
    """A dataclass field carrying its :class:`FieldMeta` (use in place of a plain default)."""
    meta = FieldMeta(help=help, label=label, range=None if range is None else (range[0], range[1]),
                     choices=None if choices is None else tuple(choices), step=step, log=log, cli=cli, ui=ui,
                     url=url)
    return dataclasses.field(default=default, metadata={_META: meta})


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One field of a spec class, resolved: its name, type, default and metadata.

    ``kind`` is the scalar type (``int``, ``float``, ``str``, ``bool``); ``length`` is 2 for pairs such as
    ``(lo, hi)`` ranges and ``None`` for scalars; ``optional`` means ``None`` is allowed.
    """

    name: str
    kind: type
    length: int | None
    optional: bool
    default: Any
    meta: FieldMeta

    @property
    def label(self) -> str:
        return self.meta.label or self.name.replace("_", " ").capitalize()

    @property
    def param(self) -> str:
        """The name of this field's link (query) parameter."""
        return self.meta.url or self.name

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def allowed(self) -> str:
        """The allowed values in words, as error messages and help texts say them."""
        if self.meta.choices is not None:
            text = "one of " + ", ".join(str(c) for c in self.meta.choices)
        elif self.kind is bool:
            text = "true or false"
        elif self.meta.range is not None:
            lo, hi = self.meta.range
            text = f"{'an integer' if self.kind is int else 'a number'} in [{_num(lo)}, {_num(hi)}]"
        else:
            text = {int: "an integer", float: "a number", str: "text"}.get(self.kind, self.kind.__name__)
        if self.length:
            text = f"{self.length} values, each {text}"
        return text + (" (or none)" if self.optional else "")

    def check(self, value: Any) -> Any:
        """``value`` converted to the field's type, or ``ValueError("name: must be …, got …")``."""
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"{self.name}: must be {self.allowed()}, got None")
        if self.length:
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != self.length:
                raise ValueError(f"{self.name}: must be {self.allowed()}, got {_short(value)}")
            return tuple(self._scalar(v) for v in value)
        return self._scalar(value)

    def _scalar(self, value: Any) -> Any:
        bad = ValueError(f"{self.name}: must be {self.allowed()}, got {_short(value)}")
        if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
            try:
                value = value.item()
            except (TypeError, ValueError):
                raise bad from None
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
                    value = int(value)
                else:
                    raise bad
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad
            value = float(value)
        elif self.kind is str and not isinstance(value, str):
            raise bad
        if self.meta.choices is not None and value not in self.meta.choices:
            raise bad
        if self.meta.range is not None and not self.meta.range[0] <= value <= self.meta.range[1]:
            raise bad
        return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(hint)):
            return args[0], True
    return hint, False


def fields_of(cls: type) -> list[FieldInfo]:
    """Every field of a spec class, resolved, in declaration order (fields of other types are skipped)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint, optional = _unwrap(hints.get(f.name, Any))
        length = None
        if typing.get_origin(hint) is tuple:
            args = [a for a in typing.get_args(hint) if a is not Ellipsis]
            length = len(typing.get_args(hint)) if Ellipsis not in typing.get_args(hint) else None
            if not args or length is None:
                continue
            hint = args[0]
        if hint not in (int, float, str, bool):
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append(FieldInfo(f.name, hint, length, optional, default, f.metadata.get(_META, FieldMeta())))
    return out


def field_info(cls: type, name: str) -> FieldInfo:
    """The :class:`FieldInfo` of ``cls.name`` (``KeyError`` if it has none)."""
    for info in fields_of(cls):
        if info.name == name:
            return info
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def _plain(value: Any) -> Any:
    """Turn a spec value into JSON-able plain data (tuples become lists, nested specs dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    return value


def _coerce(hint: Any, value: Any) -> Any:
    """Rebuild a typed value (tuple, nested spec) from its JSON form, guided by the type hint."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value)
            except (TypeError, ValueError):
                continue
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return hint.from_dict(value) if hasattr(hint, "from_dict") else hint(**value)
    if origin is tuple and isinstance(value, (list, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v) for v in value)
        if args and len(args) == len(value):
            return tuple(_coerce(a, v) for a, v in zip(args, value))
        return tuple(value)
    if origin is list and isinstance(value, (list, tuple)):
        return [_coerce(args[0], v) if args else v for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class SpecMixin:
    """Mixin for frozen dataclasses: ``to_dict``/``to_json``/``from_dict``/``from_json``/``content_hash``."""

    def check_fields(self, names: Sequence[str] | None = None) -> None:
        """Check (and normalise, e.g. ``3.0`` -> ``3``, lists -> tuples) every field declared with a range or
        choices against its :class:`FieldMeta`; call from ``__post_init__`` before checks across fields."""
        for info in fields_of(type(self)):
            if names is not None and info.name not in names:
                continue
            object.__setattr__(self, info.name, info.check(getattr(self, info.name)))

    def to_dict(self) -> dict:
        return _plain(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_dict(cls: type[T], data: dict) -> T:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
        kwargs = {k: _coerce(hints.get(k, Any), v) for k, v in data.items()}
        return cls(**kwargs)  # type: ignore[call-arg]

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    def content_hash(self, extra: str = "") -> str:
        """A stable hex digest of the spec, its class and the engine version (the store's key).

        ``extra`` lets a caller fold in data that is not a spec field (e.g. a hash of user-given arrays).
        """
        payload = f"{type(self).__name__}|{ENGINE_VERSION}|{self.to_json()}|{extra}"
        return hashlib.sha256(payload.encode()).hexdigest()[:20]
