"""Build the synthetic benchmark's train/val/test shards, in parallel, atomically and resumably."""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from v2a.data.media import encode_flac, encode_mp4
from v2a.data.shard_writer import finished_shards, read_index, record_shard, shard_name, write_shard
from v2a.data.synthetic.impacts import render_impact_clip
from v2a.shapes import ClipSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardJob:
    split: str
    seed: int
    number: int
    first_clip: int
    n_clips: int
    path: Path
    spec: ClipSpec
    max_objects: int


def _clip_rng(seed: int, clip: int) -> np.random.Generator:
    # One independent stream per clip: a clip's content never depends on shard size or worker count.
    return np.random.default_rng(np.random.SeedSequence([seed, clip]))


def _render_shard(job: ShardJob) -> tuple[ShardJob, int]:
    def samples():
        for clip in range(job.first_clip, job.first_clip + job.n_clips):
            rendered = render_impact_clip(_clip_rng(job.seed, clip), job.spec, max_objects=job.max_objects)
            yield {
                "__key__": f"synthetic-{job.split}-{clip:07d}",
                "mp4": encode_mp4(rendered.frames, job.spec.fps),
                "flac": encode_flac(rendered.audio, job.spec.sample_rate),
                "json": rendered.meta,
            }

    return job, write_shard(job.path, samples())


def build_split(
    out_dir: Path, split: str, n_clips: int, seed: int, spec: ClipSpec, *, shard_size: int, max_objects: int, workers: int
) -> dict:
    """Render ``n_clips`` into ``out_dir/split``; shards already finished are skipped."""
    split_dir = Path(out_dir) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    index = read_index(split_dir)
    index.setdefault("spec", spec.__dict__)
    done = finished_shards(split_dir, index)
    jobs = []
    for number, first in enumerate(range(0, n_clips, shard_size)):
        path = split_dir / shard_name(split, number)
        if path.name not in done:
            jobs.append(ShardJob(split, seed, number, first, min(shard_size, n_clips - first), path, spec, max_objects))
    if not jobs:
        log.info("%s: all %d shards present, nothing to do", split, len(done))
        return index
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        progress = tqdm(pool.map(_render_shard, jobs), total=len(jobs), desc=f"{split} shards", unit="shard")
        for job, count in progress:
            record_shard(split_dir, index, job.path, count)
    return index
