"""Reading evaluation clips and their ground-truth onsets from shard folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from v2a.data.streams import split_batches
from v2a.shapes import ClipSpec


def resolve_split(data: str | Path, split: str) -> tuple[Path, str]:
    """``data`` is a shard root with split folders, or one split folder itself."""
    data = Path(data)
    if (data / split).is_dir():
        return data, split
    if any(data.glob("*.tar")):
        return data.parent, data.name
    raise FileNotFoundError(f"no shards for split '{split}' under {data} (expected {data / split}/*.tar)")


def iterate_batches(data: str | Path, split: str, spec: ClipSpec, batch_size: int,
                    max_clips: int | None = None) -> Iterator[dict]:
    """Batches of a split, in shard order, stopping after ``max_clips`` clips (no Lightning involved)."""
    root, split_name = resolve_split(data, split)
    return split_batches(root, split_name, spec, batch_size, max_clips)


def event_times(meta: dict) -> np.ndarray:
    """Ground-truth onset times of a clip (seconds)."""
    return np.array(sorted(e["time"] for e in meta.get("events", [])), dtype=np.float64)
