"""Read training checkpoints without executing anything stored in them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not a v2a checkpoint."""


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, never code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    # mapped, not read: only the tensors used are paged in (inference never touches the optimizer state); the
    # legacy (non-zip) format cannot be mapped and is read whole
    mapped = zipfile.is_zipfile(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
    except Exception as error:  # corrupt file, pickle with code, wrong format
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or not checkpoint.get("v2a_config"):
        raise CheckpointError(f"{path} is not a v2a training checkpoint (no state_dict / v2a_config)")
    return checkpoint
