"""What a Kronecker net learns: a registry of small tasks whose inputs both block kinds can read.

Every input is ``T`` tokens of ``F`` features (an MLP block flattens them, a transformer block reads tokens), and
the data never depends on the training seed, so runs with different seeds are scored on the same test set.
torch is imported only when a task loads, so the spec can list the tasks without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TaskData:
    """Inputs ``(N, T, F)`` float32; integer labels ``(N,)`` per example or ``(N, T)`` per token."""

    x_train: "torch.Tensor"
    y_train: "torch.Tensor"
    x_test: "torch.Tensor"
    y_test: "torch.Tensor"


@dataclass(frozen=True)
class Task:
    """A registry entry: the input shape, the classes, whether labels are per token, and a loader."""

    name: str
    description: str
    seq_len: int
    features: int
    n_classes: int
    per_token: bool
    default_block: str
    loader: Callable[[], TaskData]
    metric: str


def _load_digits() -> TaskData:
    """sklearn's 8x8 digits (fixed seeded 80/20 split); each image row is one token."""
    import torch

    from engine.datasets import load_dataset

    ds = load_dataset("digits", seed=0)

    def tokens(x: Any) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        return t.reshape(t.shape[0], 8, 8)

    def labels(y: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(y), dtype=torch.long)

    return TaskData(tokens(ds.x_train), labels(ds.y_train), tokens(ds.x_test), labels(ds.y_test))


SORT_LEN, SORT_VOCAB, SORT_TRAIN, SORT_TEST = 8, 10, 4000, 1000


def make_sort_data(n: int, length: int = SORT_LEN, vocab: int = SORT_VOCAB, seed: int = 0):
    """Sequence sorting: the target at position ``i`` is the ``i``-th smallest input token (one-hot inputs).

    Every position must compare itself with all the others, so attention matters and depth helps, yet the data
    is generated in milliseconds with nothing to download.
    """
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (n, length), generator=gen)
    return F.one_hot(tokens, vocab).float(), torch.sort(tokens, dim=1).values


def _load_sort() -> TaskData:
    x, y = make_sort_data(SORT_TRAIN + SORT_TEST, seed=0)
    return TaskData(x[:SORT_TRAIN], y[:SORT_TRAIN], x[SORT_TRAIN:], y[SORT_TRAIN:])


TASKS: dict[str, Task] = {
    "digits": Task("digits", "8x8 handwritten digits, 10 classes (sklearn), 80/20 split", 8, 8, 10, False, "mlp",
                   _load_digits, "test accuracy (fraction of images)"),
    "sort": Task("sort", f"sort {SORT_LEN} tokens over {SORT_VOCAB} symbols (generated)", SORT_LEN, SORT_VOCAB,
                 SORT_VOCAB, True, "transformer", _load_sort, "test accuracy (fraction of output tokens)"),
}
