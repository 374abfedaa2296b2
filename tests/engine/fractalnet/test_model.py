"""FractalNet structure, drop-path, column= and joins: tiny models, checked against the paper's expansion rule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.fractalnet import (
    VARIANTS,
    DropPathSample,
    FractalBlock,
    FractalNet,
    FractalNetConfig,
    block_structure,
    column_depths,
    column_parameter_counts,
    create_model,
    describe,
    match_variant,
    parameter_count,
    variant_config,
    variant_table,
)


def _cfg(**kw) -> FractalNetConfig:
    base = dict(columns=3, filters=(4, 6), num_classes=5, in_channels=1)
    base.update(kw)
    return FractalNetConfig(**base)


class ConvLog:
    """Records which Conv2d modules ran (forward hooks), so tests see what was actually computed."""

    def __init__(self, model: torch.nn.Module):
        self.names: list[str] = []
        self.handles = []
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Conv2d):
                self.handles.append(mod.register_forward_hook(lambda m, i, o, n=name: self.names.append(n)))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _conv_id(name: str) -> tuple[int, int, int]:
    """'blocks.1.paths.2.3.0' -> (block 1, column 2, index 3)."""
    parts = name.split(".")
    return int(parts[1]), int(parts[3]), int(parts[4])


# ---- structure -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("C", [1, 2, 3, 4])
def test_block_has_2C_minus_1_convs_and_deepest_path_2C_minus_1(C):
    cfg = _cfg(columns=C, filters=(3,))
    model = FractalNet(cfg).eval()
    block = model.blocks[0]
    convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2**C - 1
    assert [len(p) for p in block.paths] == [2**c for c in range(C)]
    s = block_structure(cfg, 0)
    assert s["conv_count"] == 2**C - 1 and len(s["convs"]) == 2**C - 1
    assert s["deepest_path"] == 2 ** (C - 1)
    # Every conv runs exactly once in a full evaluation pass.
    log = ConvLog(model)
    model(torch.rand(2, 1, 4, 4))
    log.close()
    assert len(log.names) == 2**C - 1 and len(set(log.names)) == 2**C - 1
    # The deepest column alone is a chain of 2^(C-1) convs.
    log = ConvLog(model)
    model(torch.rand(2, 1, 4, 4), column=-1)
    log.close()
    assert len(log.names) == 2 ** (C - 1)
    assert {_conv_id(n)[1] for n in log.names} == {C - 1}


@pytest.mark.parametrize("C", [1, 2, 3, 4])
def test_last_join_takes_C_inputs_one_per_column(C):
    s = block_structure(_cfg(columns=C, filters=(3,)), 0)
    last = [j for j in s["joins"] if j["last"]]
    assert len(last) == 1
    assert last[0]["columns"] == list(range(C)) and len(last[0]["inputs"]) == C
    assert last[0]["pooled"] and not any(j["pooled"] for j in s["joins"] if not j["last"])
    # Intermediate joins merge every column that ends there (no join of joins): C=4 has joins of 2, 3, 2.
    if C == 4:
        assert [len(j["inputs"]) for j in s["joins"]] == [2, 3, 2, 4]
    # And at run time the block's last join really receives C tensors.
    block = FractalBlock(1, 3, C).eval()
    seen = []
    orig = block.join
    block.join = lambda pos, ins, cols: (seen.append((pos, len(ins))), orig(pos, ins, cols))[1]
    block(torch.rand(2, 1, 4, 4))
    assert seen[-1] == (2 ** (C - 1), C)


def test_expansion_rule_and_mean_join_match_a_hand_built_block():
    """f_3(z) = join(f_2(f_2(z)), conv(z)) with merged joins and pool-then-join at the block's end."""
    torch.manual_seed(0)
    block = FractalBlock(2, 3, 3, join="mean").eval()
    z = torch.rand(3, 2, 8, 8)
    P = block.paths
    with torch.no_grad():
        j2 = (P[2][1](P[2][0](z)) + P[1][0](z)) / 2  # f_2(z): join(conv(conv(z)), conv(z))
        deep = P[2][3](P[2][2](j2))  # the deep branch of f_2(f_2(z))
        mid = P[1][1](j2)  # the shallow branch of the outer f_2
        short = P[0][0](z)  # conv(z), the new column
        want = (F.max_pool2d(deep, 2) + F.max_pool2d(mid, 2) + F.max_pool2d(short, 2)) / 3
        got = block(z)
    torch.testing.assert_close(got, want)
    # Column k alone is the chain of its own convs.
    with torch.no_grad():
        got1 = block(z, block.column_active(1))
        want1 = F.max_pool2d(P[1][1](P[1][0](z)), 2)
    torch.testing.assert_close(got1, want1)


def test_structure_inputs_are_consistent():
    s = block_structure(_cfg(columns=3), 1)
    ids = {c["id"] for c in s["convs"]} | {j["id"] for j in s["joins"]} | {"input"}
    assert all(c["input"] in ids for c in s["convs"])
    assert s["in_channels"] == 4 and s["out_channels"] == 6
    with pytest.raises(ValueError, match="block"):
        block_structure(_cfg(), 5)


# ---- drop-path -----------------------------------------------------------------------------------------------


def _sampled_forward(model, g):
    """One training forward pass with a freshly drawn drop-path sample: (the sample, the convs that ran)."""
    log = ConvLog(model)
    model(torch.rand(2, 1, 4, 4), generator=g)
    log.close()
    return model.last_sample, log


def test_global_drop_path_keeps_one_same_column_in_every_block():
    cfg = _cfg(columns=(3, 2), global_ratio=1.0)
    model = FractalNet(cfg).train()
    g = torch.Generator().manual_seed(0)
    seen_columns = set()
    for _ in range(12):
        s, log = _sampled_forward(model, g)
        assert s.mode == "global"
        seen_columns.add(s.column)
        ran = [_conv_id(n) for n in log.names]
        # Block 0 (C=3) runs only column k; block 1 (C=2) only min(k, 1): the same column, clipped.
        assert {c for b, c, _ in ran if b == 0} == {s.column}
        assert {c for b, c, _ in ran if b == 1} == {min(s.column, 1)}
        assert len([r for r in ran if r[0] == 0]) == 2**s.column
    assert seen_columns == {0, 1, 2}


def test_dropped_paths_are_not_computed():
    cfg = _cfg(columns=3, filters=(4,))
    model = FractalNet(cfg).train()
    # Last join keeps column 1 only, the inner join keeps column 2 only:
    # needed are c1.1 <- join2 <- c2.1 <- c2.0; c1.0, c2.2, c2.3 and c0.0 must not run.
    sample = DropPathSample("local", None, ({2: (2,), 4: (1,)},))
    log = ConvLog(model)
    out = model(torch.rand(4, 1, 4, 4), drop=sample)
    log.close()
    assert sorted(_conv_id(n)[1:] for n in log.names) == [(1, 1), (2, 0), (2, 1)]
    # ... and get no gradient.
    model.zero_grad(set_to_none=True)
    out.sum().backward()
    P = model.blocks[0].paths
    assert P[1][0][0].weight.grad is None and P[0][0][0].weight.grad is None and P[2][3][0].weight.grad is None
    assert P[2][0][0].weight.grad is not None and P[1][1][0].weight.grad is not None


def test_local_drop_path_runs_fewer_convs_and_keeps_at_least_one_input():
    cfg = _cfg(columns=3, filters=(4,), global_ratio=0.0, local_drop=0.5)
    model = FractalNet(cfg).train()
    g = torch.Generator().manual_seed(1)
    total = 0
    for _ in range(20):
        s, log = _sampled_forward(model, g)
        assert s.mode == "local"
        for active in s.active:
            assert all(len(cols) >= 1 for cols in active.values())
        need, _ = model.blocks[0].needed(s.active[0])
        assert len(log.names) == len(need)  # exactly the needed convs ran
        total += len(log.names)
    assert total < 20 * 7


def test_mixing_ratio_per_mini_batch():
    model = FractalNet(_cfg(global_ratio=0.5))
    g = torch.Generator().manual_seed(2)
    modes = [model.sample_drop_path(g).mode for _ in range(400)]
    frac = modes.count("global") / len(modes)
    assert 0.4 < frac < 0.6
    assert set(modes) == {"global", "local"}


def test_inference_uses_all_paths_and_drop_path_off_trains_full_net():
    model = FractalNet(_cfg(drop_path=False)).train()
    log = ConvLog(model)
    model(torch.rand(2, 1, 4, 4))
    log.close()
    assert len(log.names) == 2 * 7
    assert model.last_sample.mode == "all"


# ---- column= -------------------------------------------------------------------------------------------------


def test_column_argument_negative_and_clipped():
    cfg = _cfg(columns=(3, 2))
    model = FractalNet(cfg).eval()
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(model(x, column=-1), model(x, column=2))
    torch.testing.assert_close(model(x, column=-3), model(x, column=0))
    log = ConvLog(model)
    model(x, column=-1)
    log.close()
    ran = [_conv_id(n) for n in log.names]
    assert {c for b, c, _ in ran if b == 0} == {2} and {c for b, c, _ in ran if b == 1} == {1}
    assert len(ran) == 4 + 2 == column_depths(cfg)[-1]
    for bad in (3, -4, 1.0):
        with pytest.raises(ValueError, match="column"):
            model(x, column=bad)


# ---- joins ---------------------------------------------------------------------------------------------------


def test_learned_join_with_equal_logits_is_the_mean():
    torch.manual_seed(0)
    mean_model = FractalNet(_cfg(join="mean")).eval()
    learned = FractalNet(_cfg(join="learned")).eval()
    missing, unexpected = learned.load_state_dict(mean_model.state_dict(), strict=False)
    assert not unexpected and missing and all("join_logits" in k for k in missing)
    x = torch.rand(3, 1, 4, 4)
    torch.testing.assert_close(learned(x), mean_model(x))
    sample = DropPathSample("local", None, ({2: (1, 2), 4: (0, 2)}, {2: (2,), 4: (0, 1, 2)}))
    torch.testing.assert_close(learned(x, drop=sample), mean_model(x, drop=sample))
    # Equal but non-zero logits: still the mean.
    with torch.no_grad():
        for b in learned.blocks:
            for p in b.join_logits.values():
                p.fill_(3.0)
    torch.testing.assert_close(learned(x, drop=sample), mean_model(x, drop=sample))


def test_learned_join_renormalises_over_active_inputs():
    block = FractalBlock(1, 2, 3, join="learned").eval()
    with torch.no_grad():
        block.join_logits["4"].copy_(torch.tensor([0.0, 1.0, 2.0]))
    a, b, c = (torch.full((1, 2, 2, 2), v) for v in (1.0, 10.0, 100.0))
    out = block.join(4, [a, c], (0, 2))  # column 1 dropped
    w = torch.softmax(torch.tensor([0.0, 2.0]), 0)
    torch.testing.assert_close(out, w[0] * a + w[1] * c)
    assert block.join(4, [b], (1,)) is b
    weights = FractalNet(_cfg(join="learned")).join_weights()
    assert weights[0][-1]["weights"] == pytest.approx([1 / 3] * 3)


# ---- config, registry, errors --------------------------------------------------------------------------------


def test_config_round_trips_through_json_and_validates():
    cfg = FractalNetConfig(columns=(3, 2), filters=(8, 16), join="learned", dropout=(0.0, 0.1), num_classes=7,
                           in_channels=3, local_drop=0.2, global_ratio=0.25)
    back = FractalNetConfig.from_json(cfg.to_json())
    assert back == cfg and back.content_hash() == cfg.content_hash()
    assert back.block_columns == (3, 2) and back.block_dropout == (0.0, 0.1)
    for kw, field in [({"columns": 0}, "columns"), ({"columns": (3,)}, "columns"), ({"join": "max"}, "join"),
                      ({"filters": ()}, "filters"), ({"local_drop": 1.0}, "local_drop"),
                      ({"global_ratio": 1.5}, "global_ratio"), ({"dropout": 1.0}, "dropout")]:
        with pytest.raises(ValueError, match=f"^{field}"):
            _cfg(**kw)


def test_too_small_input_gives_a_clear_error_and_backbone_returns_features():
    model = FractalNet(_cfg(filters=(4, 6, 8)))
    with pytest.raises(ValueError, match="too small.*8x8"):
        model(torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="channel"):
        model(torch.rand(1, 3, 8, 8))
    backbone = create_model("micro", num_classes=3, in_channels=1, include_top=False).eval()
    assert backbone(torch.rand(2, 1, 8, 8)).shape == (2, 32, 2, 2)


def test_registry_variants_and_table():
    assert list(VARIANTS) == ["micro", "small", "medium", "large", "paper-cifar-20", "paper-cifar-40"]
    rows = {r["name"]: r for r in variant_table()}
    assert rows["paper-cifar-20"]["deepest_depth"] == 20 and rows["paper-cifar-20"]["columns"] == 3
    assert rows["paper-cifar-40"]["deepest_depth"] == 40 and rows["paper-cifar-40"]["columns"] == 4
    assert rows["paper-cifar-20"]["filters"] == [64, 128, 256, 512, 512]
    assert rows["small"]["min_input"] <= 8
    model = create_model("small", num_classes=10, in_channels=1).eval()
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert model.config == variant_config("small", 10, 1) and match_variant(model.config) == "small"
    assert match_variant(_cfg()) is None
    assert parameter_count(model.config) == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="variant"):
        create_model("huge")


def test_per_column_depth_and_parameters():
    cfg = _cfg(columns=3, filters=(4, 6))
    model = FractalNet(cfg)
    assert column_depths(cfg) == [2, 4, 8]
    counts = column_parameter_counts(cfg)
    head = sum(p.numel() for p in model.fc.parameters())
    want0 = head + sum(p.numel() for b in model.blocks for p in b.paths[0].parameters())
    assert counts[0] == want0 and counts[0] < counts[1] < counts[2] < parameter_count(cfg)
    d = describe(cfg)
    assert d["convs_per_block"] == [7, 7] and d["column_parameters"] == counts


def test_flops_estimates():
    from engine.fractalnet import expected_train_flops, forward_flops

    cfg = _cfg(columns=2, filters=(4,), in_channels=1, num_classes=3)
    # 8x8 input: c0.0 (1->4), c1.0 (1->4), c1.1 (4->4), 64 pixels each, 3x3 kernels; head 4*3.
    macs = 64 * 9 * (4 + 4 + 16) + 4 * 3
    assert forward_flops(cfg, (8, 8)) == 2 * macs
    assert forward_flops(cfg, (8, 8), column=0) == 2 * (64 * 9 * 4 + 12)
    assert forward_flops(cfg, (8, 8), column=-1) == 2 * (64 * 9 * 20 + 12)
    no_drop = FractalNetConfig(**{**cfg.to_dict(), "drop_path": False})
    assert expected_train_flops(no_drop, (8, 8)) == 3 * forward_flops(cfg, (8, 8))
    assert expected_train_flops(cfg, (8, 8)) < 3 * forward_flops(cfg, (8, 8))
    d = describe(cfg, (8, 8))
    assert d["forward_flops"] == 2 * macs and len(d["column_forward_flops"]) == 2
