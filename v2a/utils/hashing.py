"""One streaming SHA-256 of a file: shard checksums, checkpoint identities, export weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20  # read 1 MiB at a time: a multi-GB checkpoint is hashed in constant memory


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
