"""Reading evaluation clips and their ground-truth onsets from shard folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from v2a.data.decoders import VideoAudioDecoder
from v2a.data.shard_writer import read_index
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
                    max_clips: int | None = None, **options) -> Iterator[dict]:
    """Batches of a split, in shard order, stopping after ``max_clips`` clips (no Lightning involved).

    A generator: one batch is decoded at a time, so memory does not grow with the split. ``options``: more
    :class:`~v2a.data.streams.ShardStreams` arguments (:func:`cached_feature_options`).
    """
    root, split_name = resolve_split(data, split)
    return split_batches(root, split_name, spec, batch_size, max_clips, **options)


def cached_feature_options(net) -> dict:
    """Loader options that also give each batch the cached features of ``net``'s pretrained visual backbone
    (``visual_features``, where the split holds them: generation then skips the backbone) besides the frames that
    scoring reads. Empty for a network without one."""
    backbone = getattr(getattr(net, "visual_encoder", None), "backbone", None)
    if backbone is None or not hasattr(backbone, "identity"):
        return {}
    return {"decoder": VideoAudioDecoder(keep_frames=True),
            "visual_features": {"name": backbone.name, "identity": backbone.identity}}


def count_clips(data: str | Path, split: str, max_clips: int | None = None) -> int | None:
    """Clips :func:`iterate_batches` will read, from the split's shard index (None when it has none)."""
    root, split_name = resolve_split(data, split)
    total = read_index(root / split_name).get("samples") or None
    if total is None:
        return max_clips
    return total if max_clips is None else min(total, max_clips)


def progress(batches: Iterator[dict], clips: int | None, batch_size: int, desc: str) -> Iterator[dict]:
    """``batches`` behind a progress bar that shows at once, with its length from the shard index."""
    total = None if clips is None else -(-clips // batch_size)
    return tqdm(batches, total=total, desc=desc, unit="batch")


def event_times(meta: dict) -> np.ndarray:
    """Ground-truth onset times of a clip (seconds)."""
    return np.array(sorted(e["time"] for e in meta.get("events", [])), dtype=np.float64)
