"""Read training checkpoints without executing anything stored in them."""

from __future__ import annotations

from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not a v2a checkpoint."""


def _read_whole(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, pickle with code, wrong format
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, never code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # mapped, not read: only the tensors used are paged in (inference never touches the optimizer state)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
        checkpoint = _read_whole(path)  # the legacy (non-zip) format cannot be mapped
    except Exception as error:  # corrupt file, pickle with code, wrong format
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or not checkpoint.get("v2a_config"):
        raise CheckpointError(f"{path} is not a v2a training checkpoint (no state_dict / v2a_config)")
    return checkpoint
