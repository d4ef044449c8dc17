"""Build the synthetic benchmark's train/val/test shards, in parallel, atomically and resumably."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from v2a.data.shard_writer import finished_shards, read_index, record_shard, shard_name, write_shard
from v2a.data.synthetic.impacts import SyntheticClip, render_impact_clip
from v2a.data.synthetic.scene import Scene, render_scene
from v2a.media import encode_flac, encode_mp4
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
    scene: Scene | None = None
    hidden_material_prob: float = 0.0


def _clip_rng(seed: int, clip: int) -> np.random.Generator:
    # One independent stream per clip: a clip's content never depends on shard size or worker count.
    return np.random.default_rng(np.random.SeedSequence([seed, clip]))


def render_clip(seed: int, clip: int, spec: ClipSpec, *, max_objects: int = 2, scene: Scene | None = None,
                hidden_material_prob: float = 0.0) -> SyntheticClip:
    """Clip number ``clip`` of the split seeded ``seed``: impacts only without a ``scene``, else a mixed scene."""
    rng = _clip_rng(seed, clip)
    if scene is None:
        return render_impact_clip(rng, spec, max_objects=max_objects, hidden_material_prob=hidden_material_prob)
    return render_scene(rng, spec, scene)


def _render_shard(job: ShardJob) -> tuple[ShardJob, int]:
    def samples():
        for clip in range(job.first_clip, job.first_clip + job.n_clips):
            rendered = render_clip(job.seed, clip, job.spec, max_objects=job.max_objects, scene=job.scene,
                                   hidden_material_prob=job.hidden_material_prob)
            yield {
                "__key__": f"synthetic-{job.split}-{clip:07d}",
                "mp4": encode_mp4(rendered.frames, job.spec.fps),
                "flac": encode_flac(rendered.audio, job.spec.sample_rate),
                "json": rendered.meta,
            }

    return job, write_shard(job.path, samples())


def describe_scene(scene: Scene) -> dict:
    """A JSON-able record of a scene recipe (kinds, probabilities, source classes and parameters)."""
    return {
        "kinds": {name: {"probability": kind.probability,
                         "source": f"{type(kind.source).__module__}.{type(kind.source).__qualname__}",
                         **dataclasses.asdict(kind.source)} for name, kind in scene.kinds.items()},
        **{f.name: getattr(scene, f.name) for f in dataclasses.fields(scene) if f.name != "kinds"},
    }


def _check_settings(split_dir: Path, index: dict, key: str, value: dict | None) -> None:
    if value is not None and index.get(key, value) != value or value is None and key in index:
        raise ValueError(f"{split_dir} was built with another {key} ({index.get(key)}); "
                         f"use a new out= folder or delete this one (now: {value})")


def build_split(
    out_dir: Path, split: str, n_clips: int, seed: int, spec: ClipSpec, *, shard_size: int, max_objects: int,
    workers: int, scene: Scene | None = None, hidden_material_prob: float = 0.0,
) -> dict:
    """Render ``n_clips`` into ``out_dir/split``; shards already finished are skipped.

    Without ``scene`` the clips are the impacts-only benchmark; with one, mixed scenes. A folder built
    with other settings is refused, so a resumed run never mixes two recipes.
    """
    split_dir = Path(out_dir) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    index = read_index(split_dir)
    recipe = describe_scene(scene) if scene is not None else None
    hidden = {"hidden_material_prob": hidden_material_prob} if hidden_material_prob > 0 else None
    if index["shards"]:
        _check_settings(split_dir, index, "spec", spec.__dict__)
        _check_settings(split_dir, index, "scene", recipe)
        _check_settings(split_dir, index, "impacts", hidden)
    index.setdefault("spec", spec.__dict__)
    if recipe is not None:
        index.setdefault("scene", recipe)
    if hidden is not None:
        index.setdefault("impacts", hidden)
    done = finished_shards(split_dir, index)
    jobs = []
    for number, first in enumerate(range(0, n_clips, shard_size)):
        path = split_dir / shard_name(split, number)
        if path.name not in done:
            jobs.append(ShardJob(split, seed, number, first, min(shard_size, n_clips - first), path, spec,
                                 max_objects, scene, hidden_material_prob))
    if not jobs:
        log.info("%s: all %d shards present, nothing to do", split, len(done))
        return index
    if workers <= 1:
        results = map(_render_shard, jobs)
    else:
        # Fresh interpreters, not forks: a fork of a process that has already run torch ops (a test, a
        # notebook) inherits a dead OpenMP pool and hangs in the first parallel op (torchaudio resampling).
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_render_shard, jobs)
    try:
        for job, count in tqdm(results, total=len(jobs), desc=f"{split} shards", unit="shard"):
            record_shard(split_dir, index, job.path, count)
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    return index
