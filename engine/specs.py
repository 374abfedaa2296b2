"""Spec dataclasses that round-trip through JSON, hash stably and describe their own fields.

One frozen dataclass drives a capability from the page, the CLI, the job runner and the store key. Each field
is declared once with :func:`spec_field` (range, choices, help), so widgets, URL parameters and CLI flags are
generated from it instead of being restated, and drifting, in every place that offers the setting.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import reprlib
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

from engine import ENGINE_VERSION

T = TypeVar("T", bound="SpecMixin")
_META = "fractal_lab"
#: A spec's JSON is a few kB; these bound what ``from_json`` will parse from a damaged or hostile file.
MAX_SPEC_JSON, MAX_SPEC_DEPTH = 2**20, 32
#: Values (list items at every level) one field of a spec may hold when read by ``from_dict``.
MAX_FIELD_VALUES = 10_000


@dataclasses.dataclass(frozen=True)
class FieldMeta:
    """What a user may set a field to, and how to explain it: the one declaration behind widget, link and flag.

    ``range`` is inclusive ``(lo, hi)`` for numbers (each element of a pair); ``choices`` lists the allowed
    values of a text field; ``label`` and ``help`` are the words shown to a user; ``step``/``log`` only style a
    widget. ``cli=False`` keeps a field out of generated CLI flags (e.g. one a command sets itself); ``url``
    names its link parameter when that differs from the field name (old links keep opening). ``omit_default``
    leaves the field out of ``to_dict``/``to_json`` while it holds its default: a field added later then keeps
    every stored key (``content_hash``) of the specs written before it.
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
    omit_default: bool = False


def spec_field(default: Any = dataclasses.MISSING, *, help: str = "", label: str | None = None,
               range: tuple[float, float] | None = None, choices: Sequence[Any] | None = None,
               step: float | None = None, log: bool = False, cli: bool = True, ui: bool = True,
               url: str | None = None, omit_default: bool = False) -> Any:
    """A dataclass field carrying its :class:`FieldMeta` (use in place of a plain default)."""
    if omit_default and default is dataclasses.MISSING:
        raise TypeError("spec_field: omit_default needs a default")
    meta = FieldMeta(help=help, label=label, range=None if range is None else (range[0], range[1]),
                     choices=None if choices is None else tuple(choices), step=step, log=log, cli=cli, ui=ui,
                     url=url, omit_default=omit_default)
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
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
            try:
                value = float(value)
            except OverflowError:  # an int past 1.8e308
                raise bad from None
            if not math.isfinite(value):
                raise bad
        elif self.kind is str and not isinstance(value, str):
            raise bad
        if self.meta.choices is not None and value not in self.meta.choices:
            raise bad
        if self.meta.range is not None and not self.meta.range[0] <= value <= self.meta.range[1]:
            raise bad
        return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


class _Repr(reprlib.Repr):
    """``reprlib`` with bounded depth and length, and no ``repr`` of a huge int (Python refuses those)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict = 3, 6, 6, 4
        self.maxstring, self.maxother, self.maxlong = 50, 50, 30

    def repr_int(self, x: int, level: int) -> str:
        return super().repr_int(x, level) if x.bit_length() <= 128 else f"<an integer of {x.bit_length()} bits>"


_REPR = _Repr()


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, safe for any value: deeply nested lists, 10**5000, a 4 GB list
    or an object whose ``__repr__`` raises all give a short text (an error message must never fail itself)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


_short = short_repr


def check_value(name: str, value: Any, kind: type, *, range: tuple[float, float] | None = None,
                choices: Sequence[Any] | None = None, optional: bool = False) -> Any:
    """One scalar checked like a declared field (``kind`` int/float/str/bool, inclusive ``range``, ``choices``):
    the value converted, or ``ValueError("name: must be …, got …")``. For items of variable-length fields."""
    meta = FieldMeta(range=range, choices=None if choices is None else tuple(choices))
    return FieldInfo(name, kind, None, optional, None, meta).check(value)


def nested_spec(name: str, cls: type[T], value: Any) -> T:
    """A spec field holding another spec: the instance itself, or built from its dict (a link, a stored JSON), with
    the inner error prefixed by ``name`` (``"grid: x_range: …"``); anything else is ``ValueError("name: …")``."""
    if isinstance(value, dict):
        try:
            return cls.from_dict(value)  # type: ignore[attr-defined]
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    if not isinstance(value, cls):
        raise ValueError(f"{name}: must be a {cls.__name__}, got {type(value).__name__}")
    return value


def check_items(name: str, value: Any, check: Any, *, min_len: int = 0, max_len: int,
                what: str = "items") -> tuple:
    """A list/tuple of at most ``max_len`` items, each passed through ``check(item_name, item)``, as a tuple;
    or ``ValueError("name: …")`` (a string, a dict, a scalar or too many items). The length is checked before
    any item is looked at, so a million-item list costs nothing."""
    array = hasattr(value, "shape") and hasattr(value, "tolist") and getattr(value, "ndim", 0) >= 1
    if isinstance(value, (str, bytes, dict)) or not (isinstance(value, Sequence) or array):
        count = f"{min_len}..{max_len}" if min_len < max_len else str(min_len)
        raise ValueError(f"{name}: must be a list of {count} {what}, got {short_repr(value)}")
    n = len(value)
    if not min_len <= n <= max_len:
        count = f"{min_len}..{max_len}" if min_len < max_len else str(min_len)
        raise ValueError(f"{name}: must be a list of {count} {what}, got {n:,}")
    items = value.tolist() if array else value
    return tuple(check(f"{name}[{i}]", v) for i, v in enumerate(items))


_JSON_TOKENS = re.compile(r'["\\\[\]{}]')


def load_json(name: str, text: Any, *, max_chars: int, max_depth: int) -> Any:
    """``json.loads(text)`` for text a user (or a damaged file) gave: refused with ``ValueError("name: …")``
    when longer than ``max_chars`` or nested deeper than ``max_depth`` *before* parsing (json recurses once per
    level; ``"[" * 100000`` would raise RecursionError), and when it is not JSON."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{name}: not UTF-8 text") from None
    if not isinstance(text, str):
        raise ValueError(f"{name}: must be JSON text, got {type(text).__name__}")
    if len(text) > max_chars:
        raise ValueError(f"{name}: {len(text):,} characters of JSON; allowed at most {max_chars:,}")
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"{name}: JSON nested {depth} levels deep; allowed at most {max_depth}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: could not read the JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ValueError(f"{name}: JSON nested too deep") from None


def json_depth(text: str) -> int:
    """The deepest bracket nesting of JSON ``text`` (strings skipped), in linear time and no recursion."""
    depth = best = 0
    in_string, skip = False, -1
    for match in _JSON_TOKENS.finditer(text):
        i = match.start()
        ch = text[i]
        if i == skip:
            continue
        if in_string:
            if ch == "\\":
                skip = i + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(hint)):
            return args[0], True
    return hint, False


@functools.lru_cache(maxsize=256)
def _type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints``, once per class: it compiles every string annotation on each call, which was
    most of the cost of building a spec."""
    return typing.get_type_hints(cls)


def fields_of(cls: type) -> list[FieldInfo]:
    """Every field of a spec class, resolved, in declaration order (fields of other types are skipped)."""
    return list(_fields_of(cls))


@functools.lru_cache(maxsize=256)
def _fields_of(cls: type) -> tuple[FieldInfo, ...]:
    hints = _type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint, optional = _unwrap(hints.get(f.name, Any))
        length = None
        if typing.get_origin(hint) is tuple:
            args = [a for a in typing.get_args(hint) if a is not Ellipsis]
            length = len(typing.get_args(hint)) if Ellipsis not in typing.get_args(hint) else None
            if not args or length is None or len(set(args)) > 1:  # a record of mixed types: checked by its class
                continue
            hint = args[0]
        if hint not in (int, float, str, bool):
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append(FieldInfo(f.name, hint, length, optional, default, f.metadata.get(_META, FieldMeta())))
    return tuple(out)


def field_info(cls: type, name: str) -> FieldInfo:
    """The :class:`FieldInfo` of ``cls.name`` (``KeyError`` if it has none)."""
    for info in fields_of(cls):
        if info.name == name:
            return info
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def _plain(value: Any) -> Any:
    """Turn a spec value into JSON-able plain data (tuples become lists, nested specs dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if not _omitted(value, f)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    return value


def _omitted(spec: Any, f: dataclasses.Field) -> bool:
    """Whether field ``f`` of ``spec`` is left out of its JSON form: declared ``omit_default`` and at its default."""
    meta = f.metadata.get(_META)
    if meta is None or not meta.omit_default:
        return False
    value = getattr(spec, f.name)
    return value is f.default or (type(value) is type(f.default) and value == f.default)


def _coerce(hint: Any, value: Any, budget: list[int] | None = None) -> Any:
    """Rebuild a typed value (tuple, nested spec) from its JSON form, guided by the type hint.

    ``budget`` counts the values still allowed in this field: a hostile 2000 x 2000 list is refused after
    MAX_FIELD_VALUES of them instead of being walked to the end.
    """
    budget = [MAX_FIELD_VALUES] if budget is None else budget
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, budget)
            except (TypeError, ValueError):
                continue
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return hint.from_dict(value) if hasattr(hint, "from_dict") else hint(**value)
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        budget[0] -= len(value)
        if budget[0] < 0:
            raise ValueError(f"more than {MAX_FIELD_VALUES:,} values in one field")
    if origin is tuple and isinstance(value, (list, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, budget) for v in value)
        if args and len(args) == len(value):
            return tuple(_coerce(a, v, budget) for a, v in zip(args, value))
        return tuple(value)
    if origin is list and isinstance(value, (list, tuple)):
        return [_coerce(args[0], v, budget) if args else v for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # past 1.8e308: left as it is, for the field's check to refuse by name
            return value
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
        """The spec from its JSON form; a nested spec's error is prefixed with the field that holds it
        (``"grid: x_range: …"``)."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: must be a dict of fields, got {short_repr(data)}")
        hints = _type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(str(k) for k in set(data) - names)
        if unknown:
            text = ", ".join(unknown)
            raise ValueError(f"{cls.__name__}: unknown field(s) {text if len(text) <= 200 else text[:199] + '…'}")
        kwargs = {}
        for k, v in data.items():
            try:
                kwargs[k] = _coerce(hints.get(k, Any), v)
            except ValueError as exc:
                raise ValueError(str(exc) if str(exc).startswith(f"{k}:") else f"{k}: {exc}") from None
        return cls(**kwargs)  # type: ignore[call-arg]

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(load_json(cls.__name__, text, max_chars=MAX_SPEC_JSON, max_depth=MAX_SPEC_DEPTH))

    def content_hash(self, extra: str = "") -> str:
        """A stable hex digest of the spec, its class and the engine version (the store's key).

        ``extra`` lets a caller fold in data that is not a spec field (e.g. a hash of user-given arrays).
        """
        payload = f"{type(self).__name__}|{ENGINE_VERSION}|{self.to_json()}|{extra}"
        return hashlib.sha256(payload.encode()).hexdigest()[:20]
