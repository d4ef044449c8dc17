"""Atomic, resumable webdataset shard writing with an ``index.json``.

Used by both the synthetic benchmark and real-video ingestion, so both produce the same format.
Each shard is written to a temporary name and renamed when complete: a killed run leaves either a
whole shard or none. A rerun skips shards already listed in the index.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import webdataset as wds

from v2a.utils.hashing import sha256_file

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"


def read_index(out_dir: Path) -> dict:
    """The index of a shard folder, or an empty one."""
    path = Path(out_dir) / INDEX_NAME
    if not path.exists():
        return {"shards": [], "samples": 0, "skipped": []}
    try:
        index = json.loads(path.read_bytes())
    except (ValueError, OSError) as error:  # damaged: shards are found by name, a data_prep rerun rewrites it
        log.warning("ignoring %s: not a readable shard index (%s)", path, error)
        return {"shards": [], "samples": 0, "skipped": []}
    if not isinstance(index, dict) or not isinstance(index.get("shards", []), list):
        log.warning("ignoring %s: not a shard index", path)
        return {"shards": [], "samples": 0, "skipped": []}
    return {"shards": [], "samples": 0, "skipped": [], **index}


def write_index(out_dir: Path, index: dict) -> None:
    """Write ``index.json`` atomically (temp file, then rename)."""
    path = Path(out_dir) / INDEX_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index, indent=2))
    os.replace(tmp, path)


def shard_name(prefix: str, number: int) -> str:
    return f"{prefix}-{number:06d}.tar"


def write_shard(path: Path, samples: Iterable[dict]) -> int:
    """Write ``samples`` (webdataset dicts with ``__key__``) to ``path`` atomically; returns the count."""
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    try:
        # A fixed mtime makes shards byte-identical across reruns, so checksums compare content.
        with wds.TarWriter(str(tmp), mtime=0.0) as sink:
            for sample in samples:
                sink.write(sample)
                count += 1
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return count


def chunked(items: list, size: int) -> Iterator[tuple[int, list]]:
    """(shard number, items) for consecutive chunks of ``size``."""
    for number, start in enumerate(range(0, len(items), size)):
        yield number, items[start : start + size]


def record_shard(out_dir: Path, index: dict, path: Path, count: int) -> None:
    """Add one finished shard to the index and persist it."""
    index["shards"] = [s for s in index["shards"] if s["name"] != path.name]
    index["shards"].append({"name": path.name, "samples": count, "sha256": sha256_file(path)})
    index["shards"].sort(key=lambda s: s["name"])
    index["samples"] = sum(s["samples"] for s in index["shards"])
    write_index(out_dir, index)


def finished_shards(out_dir: Path, index: dict) -> set[str]:
    """Names of indexed shards that exist on disk (a rerun skips these)."""
    return {s["name"] for s in index["shards"] if (Path(out_dir) / s["name"]).exists()}


def shard_urls(shard_dir: str | Path) -> list[str]:
    """Shard paths of a folder, from its index when present, else by glob."""
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        raise FileNotFoundError(f"shard folder {shard_dir} does not exist (build it with data_prep first)")
    index = read_index(shard_dir)
    names = [s["name"] for s in index["shards"]] or sorted(p.name for p in shard_dir.glob("*.tar"))
    regular = [n for n in names if (shard_dir / n).is_file()]
    for name in sorted(set(names) - set(regular)):  # missing, or a FIFO / folder named .tar: reading would block
        log.warning("skipping shard %s: not a regular file", shard_dir / name)
    if not regular:
        raise FileNotFoundError(f"no shards in {shard_dir}")
    return [str(shard_dir / n) for n in regular]
