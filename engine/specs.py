"""Spec dataclasses that round-trip through JSON and hash stably.

Every capability in the engine is driven by one frozen dataclass (a *spec*). The same spec is what the page
builds from its widgets, what the CLI builds from its flags, what the job runner ships to a worker process and
what the store uses as its key. Keeping that one object serialisable and hashable is what stops those four
places from drifting into four slightly different parameter lists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any, TypeVar

from engine import ENGINE_VERSION

T = TypeVar("T", bound="SpecMixin")


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
