"""Write one planned shard: decode each clip of it, encode it (mp4 + flac + json), write atomically.

Runs in a worker process. A clip that fails to decode is skipped with its reason (returned to the main
process for ``index.json``); the shard still holds every other clip, and it is renamed into place only
when complete (``write_shard``), so a crash or kill never leaves half a shard.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np

from v2a.data.ingest.issues import Issues
from v2a.data.shard_writer import write_shard
from v2a.media import encode_flac, encode_mp4, read_audio, read_frames
from v2a.shapes import ClipSpec
from v2a.utils.jsonfiles import json_bytes

MAX_RUN_GAP_S = 1.0  # clips closer than this are decoded in one pass (one seek)
MAX_RUN_SPAN_S = 60.0  # ... but at most this much video and audio is held in memory at once
TRUNCATION_SLACK_S = 0.5  # a clip needing frames later than this past the last decodable one is skipped


@dataclass(frozen=True)
class ShardJob:
    path: Path
    clips: list  # [source number, start, valid seconds, key] in plan order
    sources: dict  # source number -> planned source (path, rel, text, origin, has_audio, ...)
    spec: ClipSpec


def write_planned_shard(job: ShardJob) -> tuple[ShardJob, int, Issues]:
    """Write ``job.path``; returns the job, the clips written and the clips skipped (with reasons)."""
    issues = Issues()
    count = write_shard(job.path, _samples(job, issues))
    return job, count, issues


def _runs(clips: list, duration: float) -> list[list]:
    """Split one source's clips into runs that are decoded together."""
    runs: list[list] = []
    for clip in clips:
        last = runs[-1] if runs else None
        if last and clip[1] - (last[-1][1] + duration) <= MAX_RUN_GAP_S and clip[1] + duration - last[0][1] <= MAX_RUN_SPAN_S:
            last.append(clip)
        else:
            runs.append([clip])
    return runs


def _samples(job: ShardJob, issues: Issues) -> Iterator[dict]:
    for number, group in groupby(job.clips, key=lambda clip: clip[0]):
        source = job.sources[number]
        for run in _runs(list(group), job.spec.duration):
            try:
                decoded = list(_decode_run(source, run, job.spec))
            except Exception as error:  # any decoder failure on bad input: skip these clips, keep the run going
                reason = f"cannot decode clip: {type(error).__name__}: {error}"
                for clip in run:
                    issues.skip(source["rel"], "decode_error", reason, clip_start=clip[1])
                continue
            for clip, result in decoded:
                if isinstance(result, str):
                    issues.skip(source["rel"], "decode_error", result, clip_start=clip[1])
                    continue
                frames, audio = result
                yield {
                    "__key__": clip[3],
                    "mp4": encode_mp4(frames, job.spec.fps),
                    "flac": encode_flac(audio, job.spec.sample_rate),
                    "json": json_bytes(_meta(source, clip, job.spec)),
                }


def _decode_run(source: dict, run: list, spec: ClipSpec) -> Iterator[tuple[list, tuple | str]]:
    """(clip, (frames uint8 [T, S, S, 3], audio float32 [N]) on the spec's grid, or why not) for each clip of a run."""
    n_frames, n_samples = spec.n_video_frames, spec.n_samples
    # Only the frames inside each clip's valid part are decoded; a short final clip repeats its last frame.
    valid_frames = [min(n_frames, max(1, math.ceil(clip[2] * spec.fps - 1e-6))) for clip in run]
    times = np.concatenate([clip[1] + np.arange(count) / spec.fps for clip, count in zip(run, valid_frames, strict=True)])
    frames, last_frame = read_frames(source["path"], times, origin=source["origin"], size=spec.image_size,
                                     rotation=source["rotation"])
    begin, end = run[0][1], run[-1][1] + spec.duration
    if source["has_audio"]:
        audio = read_audio(source["path"], begin, end, origin=source["origin"], rate=spec.sample_rate)
    else:
        audio = np.zeros(int(round((end - begin) * spec.sample_rate)), dtype=np.float32)
    offset = 0
    for clip, count in zip(run, valid_frames, strict=True):
        clip_frames = frames[offset : offset + count]
        offset += count
        if clip[1] + (count - 1) / spec.fps > last_frame + TRUNCATION_SLACK_S:
            yield clip, f"video data ends at {last_frame:.2f} s (truncated or damaged file)"
            continue
        clip_frames = np.concatenate([clip_frames, np.repeat(clip_frames[-1:], n_frames - count, axis=0)])
        first = int(round((clip[1] - begin) * spec.sample_rate))
        clip_audio = audio[first : first + n_samples].copy()
        clip_audio = np.pad(clip_audio, (0, n_samples - len(clip_audio)))
        clip_audio[int(round(clip[2] * spec.sample_rate)) :] = 0.0  # silence after a short clip's end
        yield clip, (clip_frames, clip_audio)


def _meta(source: dict, clip: list, spec: ClipSpec) -> dict:
    text = source["text"]
    return {
        "fps": spec.fps,
        "sample_rate": spec.sample_rate,
        "duration": spec.duration,
        "caption": text.get("caption", ""),
        "transcript": text.get("transcript", ""),
        "negative_caption": text.get("negative_caption", ""),
        "events": [],
        "source": source["rel"],
        "clip_start": round(clip[1], 3),
        "valid_duration": round(clip[2], 3),
        "license": text.get("license", ""),
        "origin": text.get("origin", ""),
        "has_audio": bool(source["has_audio"]),
    }
