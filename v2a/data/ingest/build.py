"""Ingest a folder / manifest of videos into webdataset shards: discover, probe, plan, write in parallel.

Atomic and resumable: the plan is saved before any shard is written, each shard is written to a temp
name and renamed, and ``index.json`` lists finished shards; a rerun rebuilds only the missing ones.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from v2a.data.ingest.issues import IngestError, Issues
from v2a.data.ingest.plan import ClipOptions, fingerprint, load_plan, make_plan, save_plan
from v2a.data.ingest.sources import discover
from v2a.data.ingest.text import TextPolicy
from v2a.data.ingest.writer import ShardJob, write_planned_shard
from v2a.data.shard_writer import finished_shards, read_index, record_shard, write_index
from v2a.media import BadVideo, VideoInfo, probe
from v2a.shapes import ClipSpec

log = logging.getLogger("v2a.data.ingest")


def _init_worker() -> None:
    torch.set_num_threads(1)  # parallelism comes from the processes; threads would oversubscribe the cores


def _probe_one(path: str, *, max_resolution: int, max_duration_s: float) -> VideoInfo | BadVideo:
    try:
        return probe(path, max_resolution=max_resolution, max_duration_s=max_duration_s)
    except BadVideo as error:
        return error


def _parallel(fn: Callable, items: list, workers: int, desc: str, unit: str) -> Iterator:
    """(item, result) in completion order: in-process for workers=0, else a process pool; with a bar."""
    if workers <= 0:
        yield from tqdm(((item, fn(item)) for item in items), total=len(items), desc=desc, unit=unit)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
        futures = {pool.submit(fn, item): item for item in items}
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, unit=unit):
            yield futures[future], future.result()


def _prefix(out_dir: Path, prefix: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", prefix or out_dir.name).strip("_-") or "shard"


def ingest(
    input_path: Path,
    out_dir: Path,
    spec: ClipSpec,
    *,
    clip_options: ClipOptions | None = None,
    text_policy: TextPolicy | None = None,
    shard_size: int = 100,
    workers: int = 2,
    prefix: str | None = None,
) -> dict:
    """Turn the videos under ``input_path`` (folder, video or manifest) into shards in ``out_dir``.

    Returns the index (also in ``out_dir/index.json``). Raises :class:`IngestError` only for problems with
    the whole run (missing input, unreadable manifest, ``out_dir`` planned from other inputs/settings).
    """
    clip_options, text_policy = clip_options or ClipOptions(), text_policy or TextPolicy()
    if shard_size <= 0:
        raise IngestError(f"shard_size must be positive, got {shard_size}")
    out_dir = Path(out_dir)
    issues = Issues()
    sources = discover(Path(input_path), text_policy, issues)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.tmp"):  # left by a killed run (a kill skips write_shard's cleanup)
        stale.unlink()
    prefix = _prefix(out_dir, prefix)
    digest = fingerprint(sources, spec, clip_options, text_policy, shard_size=shard_size, prefix=prefix)
    index = read_index(out_dir)
    if index.get("fingerprint", digest if not index["shards"] else None) != digest:
        raise IngestError(f"{out_dir} holds shards made from other inputs or settings: use a new out= folder")
    plan = load_plan(out_dir, digest)
    if plan is None:
        probes = _probe_sources(sources, clip_options, workers)
        plan = make_plan(sources, probes, spec, clip_options, shard_size=shard_size,
                         prefix=prefix, issues=issues)
        save_plan(out_dir, plan, digest, issues)
    else:
        issues = Issues(plan["skipped"], plan["notes"])  # the recorded planning issues, not a second copy
        log.info("resuming from %s", out_dir / "plan.json")

    index.update(
        fingerprint=digest, spec=asdict(spec),
        planned={"sources": len(plan["sources"]), "shards": len(plan["shards"]),
                 "clips": sum(len(s["clips"]) for s in plan["shards"])},
    )
    issues.merge_into(index)
    write_index(out_dir, index)
    _write_shards(out_dir, index, plan, spec, workers)
    index["complete"] = {s["name"] for s in plan["shards"]} <= finished_shards(out_dir, index)
    write_index(out_dir, index)
    return index


def _probe_sources(sources: list, options: ClipOptions, workers: int) -> list[VideoInfo | BadVideo]:
    """Probe each distinct file once (manifest rows may share one), in parallel."""
    paths = sorted({s.path for s in sources})
    fn = partial(_probe_one, max_resolution=options.max_resolution, max_duration_s=options.max_duration_s)
    results = dict(_parallel(fn, paths, workers, "probe", "file"))
    return [results[s.path] for s in sources]


def _write_guarded(job: ShardJob) -> tuple[ShardJob, int, Issues, str | None]:
    """Write one shard; an unexpected error is returned (and the shard left for a rerun), not raised."""
    try:
        return (*write_planned_shard(job), None)
    except Exception as error:  # a bug or a full disk must not take the other shards down with it
        return job, 0, Issues(), f"{type(error).__name__}: {error}"


def _jobs(out_dir: Path, index: dict, plan: dict, spec: ClipSpec) -> Iterable[ShardJob]:
    done = finished_shards(out_dir, index)
    for shard in plan["shards"]:
        if shard["name"] in done:
            continue
        numbers = {clip[0] for clip in shard["clips"]}
        sources = {n: plan["sources"][n] for n in numbers}
        yield ShardJob(out_dir / shard["name"], shard["clips"], sources, spec)


def _write_shards(out_dir: Path, index: dict, plan: dict, spec: ClipSpec, workers: int) -> None:
    jobs = list(_jobs(out_dir, index, plan, spec))
    if not jobs:
        log.info("all %d shards present in %s, nothing to do", len(plan["shards"]), out_dir)
        return
    log.info("%d of %d shards to write", len(jobs), len(plan["shards"]))
    try:
        for _job, (job, count, shard_issues, error) in _parallel(_write_guarded, jobs, workers, "shards", "shard"):
            if error is not None:
                log.error("shard %s failed, a rerun retries it: %s", job.path.name, error)
                continue
            shard_issues.merge_into(index)
            record_shard(out_dir, index, job.path, count)  # persists the index with this shard's skips
    except BrokenProcessPool:
        raise IngestError(
            "a worker process died (a decoder crash on some input?): finished shards are kept and a rerun "
            "resumes; if it repeats, try workers=0 to find the file"
        ) from None
