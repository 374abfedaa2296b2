"""Pick the torch device: the engine runs on CUDA when a user has it, on the CPU otherwise."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"`` means CUDA if available, else CPU; anything else is passed to ``torch.device``.

    Asking for CUDA on a machine without it raises a ``ValueError`` naming the field, instead of torch's
    lower-level error deep inside a job.
    """
    if device is None or (isinstance(device, str) and device in ("", "auto")):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was requested but CUDA is not available here (use 'cpu' or 'auto')")
    return dev
