"""Key handling: where the key comes from, and the keyed +-1 pattern derived from it."""

from __future__ import annotations

import hashlib
import logging
import os

import numpy as np

log = logging.getLogger(__name__)

ENV_VAR = "V2A_WATERMARK_KEY"
# Public fallback key. Anyone can detect (and therefore also try to remove) a mark made with
# it; deployments must set V2A_WATERMARK_KEY or pass ``key=`` to keep the mark private.
DEFAULT_PUBLIC_KEY = "v2a-public-default-watermark-key"

_warned = False


def resolve_key(key: str | None) -> str:
    """Return ``key``, else ``$V2A_WATERMARK_KEY``, else the public default (with a warning)."""
    global _warned
    if key:
        return key
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    if not _warned:
        log.warning("No watermark key given and $%s is unset: using the PUBLIC default key, "
                    "which is not secret (anyone can detect or target this mark).", ENV_VAR)
        _warned = True
    return DEFAULT_PUBLIC_KEY


def key_pattern(key: str, shape: tuple[int, int], version: str = "v1") -> np.ndarray:
    """Keyed i.i.d. +-1 pattern of ``shape`` as float32.

    Bits come from SHA-256 in counter mode rather than a numpy RNG so the pattern is
    identical on every platform and numpy version. The p-value derivation assumes the
    entries are independent fair coin flips given the audio, which a cryptographic hash of a
    key the audio never saw provides.
    """
    n = int(np.prod(shape))
    seed = hashlib.sha256(f"v2a-watermark/{version}/{shape[0]}x{shape[1]}/".encode() + key.encode()).digest()
    stream = bytearray()
    counter = 0
    while len(stream) * 8 < n:
        stream += hashlib.sha256(seed + counter.to_bytes(8, "little")).digest()
        counter += 1
    bits = np.unpackbits(np.frombuffer(bytes(stream), dtype=np.uint8))[:n]
    return (bits.astype(np.float32) * 2 - 1).reshape(shape)
