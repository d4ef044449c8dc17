"""The device a job runs on: ``auto`` is the GPU when one is present, else the CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None) -> ``cuda`` when available, else ``cpu``; anything else as torch reads it."""
    if device is None or str(device).lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
