"""The spec declarations every place reads (widgets, link names, CLI flags), and the text readers of matrices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.kronecker.__main__ import _parser, _train_spec, spec_from_args
from engine.kronecker.spec import KronSpec, KronTrainSpec, read_table
from engine.specs import field_info, fields_of

ROOT = Path(__file__).resolve().parents[3]


def test_graph_import_does_not_import_torch():
    code = "import sys, engine.kronecker; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_train_fields_keep_their_link_names():
    """Old links name the Train tab's fields t_task, t_edges, t_batch ...: each field's declaration says so."""
    params = {info.name: info.param for info in fields_of(KronTrainSpec)}
    assert params == {"task": "t_task", "block": "t_block", "tied": "t_tied", "edge_weights": "t_edges",
                      "combine": "t_combine", "width": "t_width", "heads": "t_heads", "epochs": "t_epochs",
                      "lr": "t_lr", "batch_size": "t_batch", "seed": "t_seed"}
    assert field_info(KronSpec, "power").param == "power"


def test_declared_ranges_are_what_the_spec_accepts():
    width = field_info(KronTrainSpec, "width")
    lo, hi = width.meta.range
    assert KronTrainSpec(width=int(lo)).width == lo and KronTrainSpec(width=int(hi)).width == hi
    with pytest.raises(ValueError, match="^width: must be an integer in \\[4, 1024\\]"):
        KronTrainSpec(width=int(hi) + 1)
    assert field_info(KronTrainSpec, "heads").meta.range == (1, 64)
    with pytest.raises(ValueError, match="^heads:"):
        KronTrainSpec(width=8, heads=9)
    assert field_info(KronSpec, "power").meta.range == (1, 12)


def test_read_table_keeps_what_an_editor_can_show():
    assert read_table("1,0;nan,1")[0] == [1.0, 0.0]  # a bad entry stays: KronSpec names it
    assert read_table("[[1,0],[null,1]]") == [[1.0, 0.0], [None, 1.0]]
    assert read_table("1,1;0,1") == [[1.0, 1.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="^base: must be square"):
        read_table("1,0;1")
    with pytest.raises(ValueError, match="^second: entry at row 2, column 1 is 'x'"):
        read_table('[[1,0],["x",1]]', "second")
    with pytest.raises(ValueError, match="^base: has 17 nodes; allowed 1..16"):
        read_table(";".join(",".join("1" if j <= i else "0" for j in range(17)) for i in range(17)))


def test_cli_flags_come_from_the_spec():
    p = _parser()
    args = p.parse_args(["train", "--preset", "two-node", "--power", "3", "--untied", "--edge-weights", "static",
                         "--task", "sort", "--baselines", "base"])
    spec = _train_spec(args, spec_from_args(args))
    assert (spec.graph.power, spec.tied, spec.edge_weights, spec.block, spec.baselines) == \
        (3, False, "static", "transformer", ("base",))  # block: the task's usual one when not given
    args = p.parse_args(["train", "--no-tied", "--block", "mlp", "--task", "sort"])
    spec = _train_spec(args, spec_from_args(args))
    assert not spec.tied and spec.block == "mlp" and spec.baselines == KronTrainSpec().baselines
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["train", "--edge-weights", "learned"])
    assert exc.value.code == 2
