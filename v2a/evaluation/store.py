"""Generated audio kept beside a report, so metrics can be recomputed without generating again.

``OUT/generations/{generated,mismatched}/KEY.wav`` (32-bit float, exact) and ``manifest.json`` with the
settings that produced them; ``reuse=true`` reads them back and refuses a manifest from other settings.
Under ``accelerate launch`` each rank writes its clips and a ``manifest.rankN.json``; rank 0 merges.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from v2a.utils.export_files import WEIGHTS

CONDITIONS = ("generated", "mismatched")
# settings that must match for stored generations to be reused
MATCHED_SETTINGS = ("ckpt_sha256", "steps", "cfg_scale", "seed", "split", "watermark", "sampler", "vocoder")


def weights_file(ckpt: str | Path) -> Path:
    """The file whose checksum identifies a model: a checkpoint itself, or an export folder's weights."""
    path = Path(ckpt)
    return path / WEIGHTS if path.is_dir() else path


def _write_json(path: Path, content: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=2))
    os.replace(tmp, path)


class GenerationStore:
    """Read and write the generated clips of one evaluation folder."""

    def __init__(self, out_dir: str | Path) -> None:
        self.root = Path(out_dir) / "generations"

    def path(self, condition: str, key: str) -> Path:
        return self.root / condition / f"{key}.wav"

    def write(self, condition: str, key: str, audio: np.ndarray, sample_rate: int) -> None:
        path = self.path(condition, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(tmp, np.asarray(audio, dtype=np.float32), sample_rate, format="WAV", subtype="FLOAT")
        os.replace(tmp, path)

    def read(self, condition: str, key: str) -> np.ndarray:
        path = self.path(condition, key)
        if not path.is_file():
            raise FileNotFoundError(f"reuse=true but {path} is missing: evaluate once without reuse")
        audio, _ = sf.read(path, dtype="float32")
        return audio

    def write_manifest(self, settings: dict, rank: int | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        name = "manifest.json" if rank is None else f"manifest.rank{rank}.json"
        _write_json(self.root / name, settings)

    def merge_rank_manifests(self, world_size: int) -> dict:
        """Rank 0, after every rank finished: one manifest (generation seconds summed over ranks)."""
        parts = [json.loads((self.root / f"manifest.rank{r}.json").read_text()) for r in range(world_size)]
        merged = {**parts[0], "gen_seconds": sum(p["gen_seconds"] for p in parts),
                  "n_clips": sum(p["n_clips"] for p in parts), "world_size": world_size,
                  "keys": [k for p in parts for k in p["keys"]]}
        self.write_manifest(merged)
        return merged

    def manifest(self, expected: dict) -> dict:
        """The stored manifest; a clear error when it is missing or was made with other settings."""
        path = self.root / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(f"reuse=true but {path} does not exist: evaluate once without reuse")
        manifest = json.loads(path.read_text())
        differ = [k for k in MATCHED_SETTINGS if manifest.get(k) != expected.get(k)]
        if differ:
            details = ", ".join(f"{k} (stored {manifest.get(k)!r}, now {expected.get(k)!r})" for k in differ)
            raise ValueError(f"reuse=true: the generations in {self.root} were made with other settings: {details}")
        return manifest
