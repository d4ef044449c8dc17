"""Reference cache: what ground-truth audio gives, computed once per data set and reused.

The key is a checksum of the data (the splits' ``index.json``), the clip grid and features, the
calibration and test clip counts, and the identity of every measuring tool (embedders, classifier,
recognizer). A second evaluation of another checkpoint on the same data reads the detector
calibration, the validation and test embeddings and the ground-truth analysis from here; the log says
``reference cache hit`` and ``metrics.json`` records it under ``run.reference_cache``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from v2a.utils.hashing import sha256_file

log = logging.getLogger(__name__)

VERSION = 1  # bump when what is cached, or how it is computed, changes
STATS = {"hits": 0, "misses": 0}  # process-wide counters (the tests read them)


def split_checksum(split_dir: Path) -> str:
    """sha256 of a split's index.json (shards, counts, checksums); of the shard names and sizes without one."""
    index = split_dir / "index.json"
    if index.is_file():
        return sha256_file(index)
    listing = sorted((p.name, p.stat().st_size) for p in split_dir.glob("*.tar"))
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps({"version": VERSION, **parts}, sort_keys=True, default=str).encode()).hexdigest()[:24]


class ReferenceCache:
    """``cache_dir/KEY/{reference.json, embeddings.npz}``, written to a temp folder and renamed."""

    def __init__(self, cache_dir: str | Path | None, key: str) -> None:
        self.folder = Path(cache_dir) / key if cache_dir else None
        self.key = key

    def load(self) -> dict | None:
        if self.folder is None or not (self.folder / "reference.json").is_file():
            STATS["misses"] += 1
            log.info("reference cache miss (%s): computing ground-truth references", self.key)
            return None
        content = json.loads((self.folder / "reference.json").read_text())
        with np.load(self.folder / "embeddings.npz") as arrays:
            content["embeddings"] = {k: arrays[k] for k in arrays.files}
        STATS["hits"] += 1
        log.info("reference cache hit (%s): %d clips, references not recomputed", self.key, len(content["keys"]))
        return content

    def save(self, content: dict) -> None:
        if self.folder is None:
            return
        tmp = self.folder.with_name(f".{self.folder.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        plain = {k: v for k, v in content.items() if k != "embeddings"}
        (tmp / "reference.json").write_text(json.dumps(plain))
        np.savez(tmp / "embeddings.npz", **content.get("embeddings", {}))
        if self.folder.exists():  # another process finished first: same key, same content
            shutil.rmtree(tmp)
            return
        os.replace(tmp, self.folder)
        log.info("reference cache written: %s", self.folder)
