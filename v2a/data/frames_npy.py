"""Pre-extract video frames into shards (``frames.npy``), so the loader reads pixels instead of decoding H.264.

Each shard is rewritten atomically (temp file, then rename) with a ``frames.npy`` member (uint8
[T, H, W, 3], as decoded) beside or instead of its ``mp4``; every other member is copied as it is. A
sample whose video cannot be decoded is copied unchanged (the loader skips it later with its reason).
Resumable: a shard already written is skipped. Costs disk: 50 frames of 32x32 are 150 kB a clip.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
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


@dataclass(frozen=True)
class FramesJob:
    src: Path
    dst: Path
    keep_mp4: bool


def rewrite_shard(job: FramesJob) -> tuple[FramesJob, int, int]:
    """Write ``job.dst`` from ``job.src`` with frames.npy added; returns (job, samples, undecodable)."""
    failed = 0

    def samples() -> Iterator[dict]:
        nonlocal failed
        for sample in tar_samples(job.src):
            if "mp4" in sample and "frames.npy" not in sample:
                try:
                    frames, _ = decode_video(sample["mp4"])
                except Exception as error:  # bad input stays as it is; the loader skips it with its reason
                    log.warning("%s: cannot decode %s: %s", job.src.name, sample["__key__"], error)
                    failed += 1
                    yield sample
                    continue
                sample["frames.npy"] = npy_bytes(frames)
                if not job.keep_mp4:
                    del sample["mp4"]
            yield sample

    count = write_shard(job.dst, samples())
    return job, count, failed


def _has_frames(path: Path) -> bool:
    return next((s for s in tar_samples(path)), {}).get("frames.npy") is not None


def add_frames(src_dir: Path, dst_dir: Path, *, keep_mp4: bool = False, workers: int = 2) -> dict:
    """Rewrite the shards of one folder into ``dst_dir`` (may be ``src_dir``: in place); returns its index."""
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    in_place = src_dir.resolve() == dst_dir.resolve()
    dst_dir.mkdir(parents=True, exist_ok=True)
    index = read_index(src_dir)
    if not in_place:  # a rerun keeps the shards already written to dst_dir
        written = [s for s in read_index(dst_dir)["shards"] if (dst_dir / s["name"]).exists()]
        index = {**index, "shards": written, "samples": sum(s["samples"] for s in written)}
    jobs = []
    for url in shard_urls(src_dir):
        src, dst = Path(url), dst_dir / Path(url).name
        done = _has_frames(dst) if in_place else any(s["name"] == dst.name for s in index["shards"])
        if not done:
            jobs.append(FramesJob(src, dst, keep_mp4))
    index["frames_npy"] = {"keep_mp4": keep_mp4}
    write_index(dst_dir, index)
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for job, count, failed in pool.map(rewrite_shard, jobs):
            record_shard(dst_dir, index, job.dst, count)
            log.info("%s: %d samples, frames.npy added (%d undecodable, copied as they were)", job.dst.name,
                     count, failed)
    return index


def add_frames_to_root(root: Path, out: Path | None = None, *, splits: tuple[str, ...] = ("train", "val", "test"),
                       keep_mp4: bool = False, workers: int = 2) -> dict[str, dict]:
    """Rewrite every split of a shard root (or a root that holds shards itself) into ``out`` (default: in place)."""
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
    return {folder or ".": add_frames(root / folder, out / folder, keep_mp4=keep_mp4, workers=workers)
            for folder in folders}
