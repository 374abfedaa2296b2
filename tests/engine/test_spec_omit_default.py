"""``spec_field(omit_default=True)``: a field added to a spec later leaves every key stored before it alone."""

from __future__ import annotations

import dataclasses

import pytest

from engine.specs import SpecMixin, spec_field


@dataclasses.dataclass(frozen=True)
class Before(SpecMixin):
    a: int = spec_field(1, range=(0, 10))


@dataclasses.dataclass(frozen=True)
class After(SpecMixin):
    a: int = spec_field(1, range=(0, 10))
    mode: str = spec_field("plain", choices=("plain", "fancy"), omit_default=True)
    extra: tuple[float, int] | None = spec_field(None, omit_default=True)


@dataclasses.dataclass(frozen=True)
class Outer(SpecMixin):
    inner: After = dataclasses.field(default_factory=After)


def test_a_field_at_its_default_is_left_out_of_the_json_and_so_of_the_key():
    before, after = Before(a=3), After(a=3)
    assert after.to_dict() == {"a": 3} and after.to_json() == before.to_json()
    # the key hashes the class name, the engine version and this JSON: the JSON is what must not change
    assert After.from_dict({"a": 3, "mode": "plain", "extra": None}) == after
    assert After.from_json(after.to_json()) == after


def test_a_field_off_its_default_is_written_and_read_back():
    spec = After(a=3, mode="fancy", extra=(0.5, 2))
    assert spec.to_dict() == {"a": 3, "mode": "fancy", "extra": [0.5, 2]}
    back = After.from_json(spec.to_json())
    assert back == spec and back.content_hash() == spec.content_hash() != After(a=3).content_hash()
    assert isinstance(back.extra[1], int)


def test_nested_specs_omit_their_defaults_too():
    assert Outer().to_dict() == {"inner": {"a": 1}}
    assert Outer(inner=After(mode="fancy")).to_dict() == {"inner": {"a": 1, "mode": "fancy"}}


def test_omit_default_needs_a_default():
    with pytest.raises(TypeError, match="omit_default needs a default"):
        spec_field(omit_default=True)
