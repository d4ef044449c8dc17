"""Writing audio files atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono/stereo float audio (wav or flac by suffix) through a temp file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, np.clip(np.asarray(audio, dtype=np.float32), -1, 1), sample_rate,
             format=path.suffix.lstrip(".").upper() or "WAV")
    os.replace(tmp, path)
    return path
