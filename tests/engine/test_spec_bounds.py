"""Every field of every spec, fed hostile values: the spec is built or says which field is wrong and what is allowed.

Why: a spec is built from a link, a CLI flag, a stored ``spec.json`` or a page widget, so any value may reach it.
The contract is ``ValueError("<field>: …")`` (shown to the user as one line), never a TypeError, IndexError,
OverflowError, RecursionError or MemoryError escaping as a traceback. The generator below crosses every
dataclass field with ~50 hostile values (scalars, and each element of a tuple field replaced by one), through
both ``from_dict`` and the constructor. ``python -m tests.engine.test_spec_bounds`` prints the counts.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tracemalloc

import numpy as np
import pytest

from engine.datasets.dataset import Augmentation
from engine.fractalnet.cost import describe
from engine.fractalnet.model import MAX_BLOCKS, MAX_COLUMNS, MAX_FILTERS, FractalNetConfig
from engine.fractalnet.train import TrainSpec
from engine.kronecker.graph import KronGraph
from engine.kronecker.spec import KronSpec, KronTrainSpec, parse_matrix, read_table
from engine.trainability.spec import GridSpec, GridTile
from engine.trainability.video import VideoSpec


def _deep(depth: int) -> list:
    v: list = []
    for _ in range(depth):
        v = [v]
    return v


HOSTILE: dict[str, object] = {
    "None": None, "empty str": "", "str": "abc", "str 1": "1", "str nan": "nan", "str 1e400": "1e400",
    "str 10**23": "99999999999999999999999", "long str": "a" * 100_000, "bytes": b"x",
    "True": True, "False": False, "nan": math.nan, "inf": math.inf, "-inf": -math.inf, "1e400": float("1e400"),
    "-1": -1, "0": 0, "1": 1, "1.5": 1.5, "-0.0": -0.0, "1e-320": 1e-320, "2**63": 2**63, "2**64": 2**64,
    "-2**64": -(2**64), "10**23": 99999999999999999999999, "10**5000": 10**5000, "1e300": 1e300, "1j": 1j,
    "[]": [], "[1]": [1], "[[1]]": [[1]], "{}": {}, "dict": {"x": 1}, "pair": (1, 2), "[None]": [None],
    "[str]": ["a"], "[nan]": [math.nan], "[10**23]": [10**23], "[2**64]": [2**64], "[-1]": [-1], "[True]": [True],
    "nested 10000": _deep(10_000), "huge list": [1] * 100_000, "big square": [[0] * 2000] * 2000,
    "object": object(), "np.int64": np.int64(2**62), "np.nan": np.float64("nan"), "np.bool": np.bool_(True),
    "np.array": np.array([1, 2, 3]),
}
ELEMENT_VALUES = ("None", "str", "True", "nan", "inf", "-1", "0", "1.5", "2**64", "10**23", "10**5000", "[1]",
                  "dict", "nested 10000", "object", "np.array")


def _video() -> VideoSpec:
    return VideoSpec(grid=GridSpec(x_range=(0.0, 1.0), y_range=(0.0, 1.0)), full_x_range=(-3.0, 6.0),
                     full_y_range=(-3.0, 6.0))


BASES = {
    FractalNetConfig: FractalNetConfig,
    TrainSpec: TrainSpec,
    GridSpec: GridSpec,
    GridTile: lambda: GridTile(GridSpec(), (0, 8), (0, 8)),
    VideoSpec: _video,
    KronSpec: KronSpec,
    KronTrainSpec: KronTrainSpec,
    Augmentation: Augmentation,
}


def _variants(base_value: object) -> list[tuple[str, object]]:
    """The whole value replaced by each hostile value, and (for tuples) its first element, or first entry."""
    out = list(HOSTILE.items())
    if isinstance(base_value, tuple) and base_value:
        for label in ELEMENT_VALUES:
            out.append((f"[0]={label}", [HOSTILE[label], *base_value[1:]]))
            first = base_value[0]
            if isinstance(first, tuple) and first:
                out.append((f"[0][0]={label}", [[HOSTILE[label], *first[1:]], *base_value[1:]]))
    return out


#: Checks across fields, where the other field is the one to name: a grid whose view is the full range leaves the
#: zoom no path; a second matrix needs its names; a base of another size needs as many names.
CROSS_FIELD = {(VideoSpec, "grid"): ("path",), (KronSpec, "second"): ("second_names",),
               (KronSpec, "base"): ("names",)}


def _failure(build, field: str, also: tuple[str, ...] = ()) -> str | None:
    """None when ``build()`` succeeds or raises ``ValueError("<field>…")``; otherwise what went wrong."""
    try:
        build()
    except ValueError as exc:
        try:
            message = str(exc)
        except Exception as inner:  # noqa: BLE001 - a message that cannot even be shown
            return f"ValueError whose message fails: {type(inner).__name__}"
        for name in (field, *also):
            if message.startswith(name) and message[len(name):len(name) + 1] in (":", "["):
                return None
        return f"ValueError not naming the field: {message[:120]!r}"
    except BaseException as exc:  # noqa: BLE001 - exactly what must never escape
        if isinstance(exc, KeyboardInterrupt):
            raise
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    return None


def cases(cls: type) -> list[tuple[str, str, object]]:
    """``(field, label, build)`` for every field of ``cls``, every hostile value, from_dict and constructor."""
    base = BASES[cls]()
    plain = base.to_dict()
    kwargs = {f.name: getattr(base, f.name) for f in dataclasses.fields(cls)}
    out = []
    for f in dataclasses.fields(cls):
        for label, value in _variants(getattr(base, f.name)):
            out.append((f.name, f"from_dict {label}", lambda v=value, n=f.name: cls.from_dict({**plain, n: v})))
            out.append((f.name, f"constructor {label}", lambda v=value, n=f.name: cls(**{**kwargs, n: v})))
    return out


def failures(cls: type, field: str | None = None) -> tuple[int, list[str]]:
    """How many cases ran, and a line for each that broke the contract."""
    out, total = [], 0
    for name, label, build in cases(cls):
        if field is not None and name != field:
            continue
        total += 1
        problem = _failure(build, name, CROSS_FIELD.get((cls, name), ()))
        if problem:
            out.append(f"{cls.__name__}.{name} {label}: {problem}")
    return total, out


FIELDS = [(cls, f.name) for cls in BASES for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("cls,field", FIELDS, ids=[f"{c.__name__}.{n}" for c, n in FIELDS])
def test_every_hostile_value_is_accepted_or_refused_by_name(cls, field):
    total, bad = failures(cls, field)
    assert total > 0
    assert not bad, f"{len(bad)} of {total} cases broke the contract:\n" + "\n".join(bad[:40])


# ---------------------------------------------------------------------------------------------- FractalNet bounds


def test_custom_filters_of_absurd_size_are_refused_by_name():
    with pytest.raises(ValueError, match=r"^filters\[0\]: must be an integer in \[1, %d\]" % MAX_FILTERS):
        FractalNetConfig(filters=(99999999999999999999999,))
    with pytest.raises(ValueError, match=r"^filters: must be a list of 1\.\.%d .*got 4,000" % MAX_BLOCKS):
        FractalNetConfig(columns=2, filters=(8,) * 4000)


@pytest.mark.parametrize("kw,message", [
    ({"columns": MAX_COLUMNS + 1}, r"columns: must be an integer in \[1, 6\]"),
    ({"columns": (3, 3, 99)}, r"columns\[2\]: must be an integer in \[1, 6\]"),
    ({"num_classes": 10**9}, r"num_classes: must be an integer in \[1, 1000000\]"),
    ({"in_channels": 10**6}, r"in_channels: must be an integer in \[1, 1024\]"),
    ({"dropout": (0.1, "x", 0.2)}, r"dropout\[1\]: must be a number in \[0, 1\]"),
    ({"columns": MAX_COLUMNS, "filters": (MAX_FILTERS,) * 3}, r"filters: .* parameters; allowed at most 200,000,000"),
])
def test_fractalnet_limits_name_the_field_and_the_range(kw, message):
    with pytest.raises(ValueError, match="^" + message):
        FractalNetConfig(**kw)


def _largest_config() -> FractalNetConfig:
    """The most expensive config to describe that is accepted: every block at the most columns, within the
    parameter cap."""
    f = 8
    while f < MAX_FILTERS:
        try:
            FractalNetConfig(columns=MAX_COLUMNS, filters=(f * 2,) * MAX_BLOCKS, join="learned")
        except ValueError:
            break
        f *= 2
    return FractalNetConfig(columns=MAX_COLUMNS, filters=(f,) * MAX_BLOCKS, join="learned")


def test_describe_of_the_largest_accepted_config_builds_no_module(monkeypatch):
    import torch

    built = []
    original = torch.nn.Module.__init__

    def counting(self, *a, **kw):
        built.append(type(self).__name__)
        original(self, *a, **kw)

    monkeypatch.setattr(torch.nn.Module, "__init__", counting)
    cfg = _largest_config()
    side = cfg.min_input_size
    tracemalloc.start()
    try:
        info = describe(cfg, (side, side))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert built == []
    assert peak < 20 * 2**20  # plain integer arithmetic, not a model's worth of tensors
    assert info["blocks"] == MAX_BLOCKS and info["parameters"] > 0 and info["forward_flops"] > 0


def test_describe_counts_what_the_model_holds():
    """The analytic counts equal the built model's, for every join kind and mixed per-block columns."""
    import torch

    from engine.fractalnet.model import FractalNet

    for cfg in (FractalNetConfig(columns=(1, 3, 2), filters=(4, 6, 8), join="learned", num_classes=7,
                                 in_channels=2),
                FractalNetConfig(columns=4, filters=(5, 3), join="mean")):
        with torch.device("meta"):
            model = FractalNet(cfg)
        info = describe(cfg)
        assert info["parameters"] == sum(p.numel() for p in model.parameters())
        for k, n in enumerate(info["column_parameters"]):
            want = sum(p.numel() for p in model.fc.parameters())
            for block in model.blocks:
                want += sum(p.numel() for p in block.paths[min(k, block.num_columns - 1)].parameters())
            assert n == want


def test_describe_refuses_a_hostile_image_size():
    cfg = FractalNetConfig()
    for bad in ((0, 0), (2, 2), (10**9, 10**9), ("a", 3), (3,), None, 5):
        if bad is None:
            continue
        with pytest.raises(ValueError, match="^image_size: "):
            describe(cfg, bad)


def test_activation_memory_is_bounded_before_training():
    from engine.fractalnet.cost import MAX_ACTIVATION_BYTES, activation_bytes, check_activation_memory

    cfg = FractalNetConfig(columns=MAX_COLUMNS, filters=(64,) * 5)
    need = activation_bytes(cfg, (512, 512), 4096)
    assert need > MAX_ACTIVATION_BYTES
    with pytest.raises(ValueError, match="^batch_size: .*activation"):
        check_activation_memory(cfg, (512, 512), 4096)
    check_activation_memory(FractalNetConfig(), (32, 32), 32)
    with pytest.raises(ValueError, match="^batch_size: .*activation"):
        TrainSpec(model=cfg, image_size=512, batch_size=4096)


def test_a_zoom_path_float64_cannot_resolve_is_named_and_levels_are_counted_before_building():
    with pytest.raises(ValueError, match=r"^path\[1\]: .*narrower than float64 can resolve"):
        VideoSpec(grid=GridSpec(), path=[(-30.0, 30.0, -30.0, 30.0), (0.0, 5e-324, 0.0, 5e-324)])
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"^path: \d+ factor-2 zoom levels; at most 40"):
            VideoSpec(grid=GridSpec(), path=[(-30.0, 30.0, -30.0, 30.0), (0.0, 1e-12, 0.0, 1e-12)] * 500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20  # the ~46,000 keyframe views are counted, not built


# ---------------------------------------------------------------------------------------------- Kronecker text


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 100_000 + "]" * 100_000, "[[" + "[" * 5000 + "1",
                                  "[[1,0],[1," + "[" * 3000 + "1" + "]" * 3000 + "]]"])
@pytest.mark.parametrize("reader", [parse_matrix, read_table])
def test_deeply_nested_matrix_text_is_a_named_error(reader, text):
    old = sys.getrecursionlimit()
    with pytest.raises(ValueError, match="^second: "):
        reader(text, "second")
    assert sys.getrecursionlimit() == old


def test_oversized_matrix_text_is_refused_before_parsing():
    text = "[" + ",".join(["[" + ",".join(["0"] * 3000) + "]"] * 3000) + "]"  # 18 MB of JSON
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="^base: "):
            parse_matrix(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_a_big_matrix_is_refused_before_it_is_converted():
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="^base: .*allowed 1..16"):
            KronSpec(base=[[0.0] * 3000] * 3000, names=("a",) * 3000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_spec_json_nested_too_deep_is_a_named_error():
    with pytest.raises(ValueError, match="^KronSpec: JSON nested 100001 levels deep; allowed at most 32"):
        KronSpec.from_json('{"base": ' + "[" * 100_000 + "}")
    with pytest.raises(ValueError, match="^format: .*nested too deep"):
        KronGraph.from_json("[" * 100_000)


if __name__ == "__main__":
    grand, broken = 0, 0
    for spec_cls in BASES:
        n, bad = failures(spec_cls)
        grand, broken = grand + n, broken + len(bad)
        print(f"{spec_cls.__name__:18s} {len(bad):5d} of {n:5d} cases broke the contract")
        for line in bad:
            print("   ", line)
    print(f"{'total':18s} {broken:5d} of {grand:5d}")
