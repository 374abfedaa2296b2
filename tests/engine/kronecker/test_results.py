"""A kron_train result folder read back through engine.kronecker.results (the only module naming its files)."""

from __future__ import annotations

import pytest
import torch

from engine.kronecker import results
from engine.kronecker.spec import KronSpec, KronTrainSpec


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("kron")
    spec = KronTrainSpec(graph=KronSpec(base=((1, 0), (1, 1)), names=("a", "b"), power=2), width=8, epochs=1,
                         batch_size=512, lr=1e-2, baselines=("sequential", "base"))
    results.run_to_dir(spec, out)
    torch.set_num_threads(old)
    return spec, out


def test_read_keeps_the_training_order(run_dir):
    spec, out = run_dir
    run = results.read(out)
    assert [r["model"] for r in run.table] == spec.model_names() == ["kron_tied", "sequential", "base"]
    assert list(run.curves) == spec.model_names() and list(run.edge_weights) == ["kron_tied", "base"]
    assert {p["model"] for p in run.points("test_curves")} == set(spec.model_names())
    m = run.edge_matrix("kron_tied")
    assert m.shape == (4, 4) and m.nnz == 5
    assert results.read_spec(out) == spec


def test_downloads_and_thumbnail(run_dir):
    spec, out = run_dir
    assert set(results.files(out)) == {"results.csv", "curves.csv", "summary.json", "spec.json"}
    ckpt = results.checkpoints(out)
    assert set(ckpt) == set(spec.model_names())
    name, read = ckpt["base"]
    assert name == "checkpoint_base.safetensors" and len(read()) > 0
    png = results.thumbnail(out)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_thumbnail_of_an_empty_folder_is_none(tmp_path):
    assert results.thumbnail(tmp_path) is None
