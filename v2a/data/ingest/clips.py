"""Where the clips of a source lie (fixed-length windows) and what each is called (its ``__key__``)."""

from __future__ import annotations

import hashlib
import re


def clip_windows(
    begin: float, end: float, *, duration: float, stride: float, min_fraction: float, max_clips: int | None
) -> list[tuple[float, float]]:
    """(start, valid seconds) of consecutive windows of ``duration`` every ``stride`` over [begin, end).

    A final window shorter than ``duration`` is kept (and padded when written: last frame repeated,
    silence) if it holds at least ``min_fraction`` of a clip, else dropped. Windows stop at the first
    partial one, so overlapping strides do not produce a tail of ever shorter clips.
    """
    if duration <= 0 or stride <= 0:
        raise ValueError(f"duration and clip_stride must be positive, got {duration} and {stride}")
    windows: list[tuple[float, float]] = []
    number = 0
    while max_clips is None or len(windows) < max_clips:
        start = begin + number * stride  # by multiplication: no drift from repeated float additions
        valid = min(duration, end - start)
        if valid < duration - 1e-6:
            if valid >= min_fraction * duration - 1e-6 and valid > 0:
                windows.append((start, valid))
            break
        windows.append((start, duration))
        number += 1
    return windows


def clip_key(rel: str, start: float) -> str:
    """``<sanitised relative path>_<8 hex of its sha1>_<start in ms, 9 digits>``, e.g. ``vid_abc_3f2a91c0_000002000``.

    Only [A-Za-z0-9_-] survive (webdataset splits keys at dots; tar names must be plain); the hash keeps
    paths that sanitise alike (``a b.mp4``, ``a;b.mp4``, unicode names) apart.
    """
    stem = rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:80] or "video"
    digest = hashlib.sha1(rel.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{name}_{digest}_{round(start * 1000):09d}"
