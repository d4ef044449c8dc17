"""Pre-extract video frames into shards (``frames.npy``), so the loader reads pixels instead of decoding H.264.

Each shard is rewritten atomically (temp file, then rename) with a ``frames.npy`` member (uint8
[T, H, W, 3], as decoded) beside or instead of its ``mp4``; every other member is copied as it is. A
sample whose video cannot be decoded is copied unchanged (the loader skips it later with its reason).
Resumable: a shard already written is skipped. Costs disk: 50 frames of 32x32 are 150 kB a clip.

The rewriting itself (:func:`rewrite_folder`, :func:`rewrite_root`: atomic shards, resumable, recorded in
``index.json``) is generic: ``data_prep/extract_features.py`` adds cached visual features the same way
(:mod:`v2a.data.visual_features`).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from v2a.data.shard_writer import read_index, record_shard, shard_urls, write_index, write_shard
from v2a.media import decode_video

log = logging.getLogger(__name__)

ROOT_FILES = ("tokenizer.model", "tokenizer.json")  # copied to a new root beside its splits


def tar_samples(path: Path) -> Iterator[dict]:
    """The samples of a tar, as ``{"__key__": key, ext: bytes}`` (members grouped by key, in order)."""
    current: dict | None = None
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = member.name.partition(".")
            if current is not None and key != current["__key__"]:
                yield current
                current = None
            current = current or {"__key__": key}
            current[ext] = tar.extractfile(member).read()
    if current is not None:
        yield current


def npy_bytes(frames: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(frames), allow_pickle=False)
    return buffer.getvalue()


class SampleRewrite:
    """What a shard rewrite adds to every sample: a picklable callable over a shard's samples.

    ``member`` names the tar member it adds (``frames.npy``, ``features.NAME.npy``); a sample it cannot process is
    yielded unchanged and its key appended to ``failed`` (the loader later skips it with its reason).
    """

    member: str

    def __call__(self, samples: Iterator[dict], failed: list[str]) -> Iterator[dict]:
        raise NotImplementedError


@dataclass(frozen=True)
class FramesRewrite(SampleRewrite):
    """Adds ``frames.npy`` (the decoded mp4, uint8 [T, H, W, 3]); drops the mp4 unless ``keep_mp4``."""

    keep_mp4: bool = False
    member: str = "frames.npy"

    def __call__(self, samples: Iterator[dict], failed: list[str]) -> Iterator[dict]:
        for sample in samples:
            if "mp4" in sample and "frames.npy" not in sample:
                try:
                    frames, _ = decode_video(sample["mp4"])
                except Exception as error:  # bad input stays as it is; the loader skips it with its reason
                    log.warning("cannot decode %s: %s", sample["__key__"], error)
                    failed.append(sample["__key__"])
                    yield sample
                    continue
                sample["frames.npy"] = npy_bytes(frames)
                if not self.keep_mp4:
                    del sample["mp4"]
            yield sample


@dataclass(frozen=True)
class ShardJob:
    src: Path
    dst: Path
    rewrite: SampleRewrite


def rewrite_shard(job: ShardJob) -> tuple[ShardJob, int, int]:
    """Write ``job.dst`` from ``job.src`` through ``job.rewrite``; returns (job, samples, samples it could not process)."""
    failed: list[str] = []
    count = write_shard(job.dst, job.rewrite(tar_samples(job.src), failed))
    return job, count, len(failed)


def _first_sample_has(path: Path, member: str) -> bool:
    return next((s for s in tar_samples(path)), {}).get(member) is not None


def rewrite_folder(src_dir: Path, dst_dir: Path, rewrite: SampleRewrite, *, workers: int = 2,
                   record: Callable[[dict], None] | None = None) -> dict:
    """Rewrite the shards of one folder into ``dst_dir`` (may be ``src_dir``: in place); returns its index.

    Atomic (each shard is written to a temporary name, then renamed; the index after each shard) and resumable
    (a shard whose index entry lists ``rewrite.member`` is skipped). ``record(index)`` states the rewrite in the
    index before any shard is written. ``workers`` processes, one shard each (0: in this process, e.g. a rewrite
    that holds a model on a GPU).
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    in_place = src_dir.resolve() == dst_dir.resolve()
    dst_dir.mkdir(parents=True, exist_ok=True)
    index = read_index(src_dir)
    source_entries = {s["name"]: s for s in index["shards"]}
    if not in_place:  # a rerun keeps the shards already written to dst_dir
        written = [s for s in read_index(dst_dir)["shards"] if (dst_dir / s["name"]).exists()]
        index = {**index, "shards": written, "samples": sum(s["samples"] for s in written)}
    entries = {s["name"]: s for s in index["shards"]}
    jobs = []
    for url in shard_urls(src_dir):
        src, dst = Path(url), dst_dir / Path(url).name
        entry = entries.get(dst.name)
        if in_place and entry is not None and "members" in entry:
            done = rewrite.member in entry["members"]
        elif in_place:   # a shard from before the index listed members: look at its first sample
            done = _first_sample_has(dst, rewrite.member)
        else:
            done = entry is not None
        if not done:
            jobs.append(ShardJob(src, dst, rewrite))
    if record is not None:
        record(index)
    write_index(dst_dir, index)

    def finish(job: ShardJob, count: int, failed: int) -> None:
        members = set(source_entries.get(job.dst.name, {}).get("members", [])) | {rewrite.member}
        record_shard(dst_dir, index, job.dst, count)
        next(s for s in index["shards"] if s["name"] == job.dst.name)["members"] = sorted(members)
        write_index(dst_dir, index)
        log.info("%s: %d samples, %s added (%d could not be processed, copied as they were)", job.dst.name, count,
                 rewrite.member, failed)

    if workers <= 0:
        for job in jobs:
            finish(*rewrite_shard(job))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(rewrite_shard, jobs):
                finish(*result)
    return index


def rewrite_root(root: Path, out: Path | None, rewrite_folder_fn: Callable[[Path, Path], dict], *,
                 splits: tuple[str, ...] = ("train", "val", "test")) -> dict[str, dict]:
    """Apply ``rewrite_folder_fn(src_dir, dst_dir)`` to every split of a shard root (or a root that holds shards
    itself), into ``out`` (default: in place); root files (the tokenizer) are copied to a new root."""
    root = Path(root)
    out = Path(out) if out else root
    folders = [""] if list(root.glob("*.tar")) else [s for s in splits if (root / s).is_dir()]
    if not folders:
        raise FileNotFoundError(f"no shards in {root} nor in its splits {list(splits)}")
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() != root.resolve():
        for name in ROOT_FILES:
            if (root / name).is_file():
                shutil.copyfile(root / name, out / f"{name}.tmp")
                os.replace(out / f"{name}.tmp", out / name)
    return {folder or ".": rewrite_folder_fn(root / folder, out / folder) for folder in folders}


def add_frames(src_dir: Path, dst_dir: Path, *, keep_mp4: bool = False, workers: int = 2) -> dict:
    """Rewrite the shards of one folder into ``dst_dir`` (may be ``src_dir``: in place) with frames.npy."""
    def record(index: dict) -> None:
        index["frames_npy"] = {"keep_mp4": keep_mp4}

    return rewrite_folder(src_dir, dst_dir, FramesRewrite(keep_mp4), workers=max(1, workers), record=record)


def add_frames_to_root(root: Path, out: Path | None = None, *, splits: tuple[str, ...] = ("train", "val", "test"),
                       keep_mp4: bool = False, workers: int = 2) -> dict[str, dict]:
    """Rewrite every split of a shard root (or a root that holds shards itself) into ``out`` (default: in place)."""
    return rewrite_root(root, out, partial(add_frames, keep_mp4=keep_mp4, workers=workers), splits=splits)
