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
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):  # torch's message lists dozens of device types this lab never uses
        raise ValueError(f"device: must be auto, cpu, cuda[:N] or mps, got {str(device)[:60]!r}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: must be auto, cpu, cuda[:N] or mps, got {str(device)[:60]!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was requested but CUDA is not available here (use 'cpu' or 'auto')")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device: {dev} does not exist here ({torch.cuda.device_count()} CUDA device(s))")
    return dev
