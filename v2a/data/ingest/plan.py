"""The shard plan: every clip of every usable source, assigned to a shard once, up front.

The plan is a pure function of the sorted inputs, their probes and the settings, and it is saved as
``plan.json`` next to the shards: a rerun (after a kill, or after a shard was deleted) reuses it, so
every shard is rebuilt with exactly the clips it had, and no clip can land in two shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from v2a.data.ingest.clips import clip_key, clip_windows
from v2a.data.ingest.issues import IngestError, Issues
from v2a.data.ingest.sources import Source
from v2a.data.shard_writer import shard_name
from v2a.media import BadVideo, VideoInfo
from v2a.shapes import ClipSpec
from v2a.utils.jsonfiles import json_bytes

PLAN_NAME = "plan.json"
PLAN_VERSION = 1


@dataclass(frozen=True)
class ClipOptions:
    """How sources are cut into clips and which sources are refused."""

    clip_stride: float | None = None  # seconds between clip starts; None: the clip duration (no overlap)
    min_clip_fraction: float = 0.5  # a final partial window shorter than this fraction of a clip is dropped
    max_clips_per_video: int | None = None
    no_audio: str = "keep"  # keep (silent clips, has_audio false) | skip
    max_resolution: int = 8192
    max_duration_s: float = 4 * 3600.0

    def __post_init__(self) -> None:
        if self.no_audio not in ("keep", "skip"):
            raise ValueError(f"no_audio must be keep or skip, got {self.no_audio!r}")
        if not 0 < self.min_clip_fraction <= 1:
            raise ValueError(f"min_clip_fraction must be in (0, 1], got {self.min_clip_fraction}")


def fingerprint(
    sources: list[Source], spec: ClipSpec, options: ClipOptions, text_policy: object, *, shard_size: int, prefix: str
) -> str:
    """A digest of everything the plan depends on except the probes (inputs, their sizes, settings)."""
    payload = {
        "layout": [shard_size, prefix],
        "spec": asdict(spec),
        "options": asdict(options),
        "text": asdict(text_policy),  # type: ignore[call-overload]
        "sources": [[s.rel, s.size, s.start, s.end, s.text] for s in sources],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def make_plan(
    sources: list[Source],
    probes: list[VideoInfo | BadVideo],
    spec: ClipSpec,
    options: ClipOptions,
    *,
    shard_size: int,
    prefix: str,
    issues: Issues,
) -> dict:
    """{"sources": [...], "shards": [{"name", "clips": [[source, start, valid, key], ...]}]}."""
    stride = options.clip_stride or spec.duration
    used: list[dict] = []
    clips: list[list] = []
    seen: set[str] = set()
    for source, info in zip(sources, probes, strict=True):
        if isinstance(info, BadVideo):
            issues.skip(source.label, info.kind, info.reason)
            continue
        if not info.has_audio and options.no_audio == "skip":
            issues.skip(source.label, "no_audio", "no audio stream (no_audio=skip)")
            continue
        if source.start >= info.duration:
            issues.skip(source.label, "bad_range", f"start {source.start:g} s is past the video's end ({info.duration:.2f} s)")
            continue
        end = info.duration if source.end is None else min(source.end, info.duration)
        if source.end is not None and source.end > info.duration + 1.0 / info.fps:
            issues.note(source.label, "range_clamped", f"end {source.end:g} s clamped to the video's {info.duration:.2f} s")
        windows = clip_windows(
            source.start, end, duration=spec.duration, stride=stride,
            min_fraction=options.min_clip_fraction, max_clips=options.max_clips_per_video,
        )
        if not windows:
            issues.skip(source.label, "too_short", f"{end - source.start:.2f} s is shorter than "
                        f"{options.min_clip_fraction:g} x {spec.duration:g} s (min_clip_fraction x clip duration)")
            continue
        if not info.has_audio:
            issues.note(source.label, "no_audio", "no audio stream: kept as silent clips (has_audio false)")
        number = len(used)
        kept = 0
        for start, valid in windows:
            key = clip_key(source.rel, start)
            if key in seen:  # two manifest rows over the same time of one file
                issues.skip(source.label, "duplicate", f"clip {key} already planned from an earlier row",
                            clip_start=round(start, 3))
                continue
            seen.add(key)
            clips.append([number, round(start, 6), round(valid, 6), key])
            kept += 1
        if kept:
            used.append({**asdict(source), **asdict(info)})
    shards = [
        {"name": shard_name(prefix, number), "clips": clips[first : first + shard_size]}
        for number, first in enumerate(range(0, len(clips), shard_size))
    ]
    return {"sources": used, "shards": shards}


def load_plan(out_dir: Path, digest: str) -> dict | None:
    """The saved plan when it was made from the same inputs and settings; IngestError when not."""
    path = Path(out_dir) / PLAN_NAME
    if not path.exists():
        return None
    plan = json.loads(path.read_text())
    if plan.get("version") != PLAN_VERSION or plan.get("fingerprint") != digest:
        raise IngestError(
            f"{out_dir} holds shards planned from other inputs or settings (its {PLAN_NAME} differs): "
            "write to a new out= folder, or delete that folder to rebuild it"
        )
    return plan


def save_plan(out_dir: Path, plan: dict, digest: str, issues: Issues) -> None:
    """Write ``plan.json`` atomically, with the planning-stage skips and notes (replayed on resume)."""
    path = Path(out_dir) / PLAN_NAME
    tmp = path.with_name(path.name + ".tmp")
    payload = {"version": PLAN_VERSION, "fingerprint": digest, **plan,
               "skipped": issues.skipped, "notes": issues.notes}
    tmp.write_bytes(json_bytes(payload))  # file names that are not UTF-8 included (they read back the same)
    os.replace(tmp, path)
