"""Audio embedders for Fréchet distances: anything with ``name``, ``identity()`` and ``embed()``.

- :class:`v2a.evaluation.classifier.ClassifierEmbedder`: the framework-trained classifier's penultimate
  layer (``classifier=PATH`` in ``v2a/conf/evaluate.yaml``).
- :class:`WhisperEmbedder`: the encoder of Whisper tiny.en (offline, optional ``eval`` extra), mean-pooled
  over time: a general pretrained audio encoder, strongest on speech.
- Your own: a class with the same three members, listed under ``embedders:`` with a ``_target_``
  (docs/metrics.md shows VGGish and PANNs, which need internet to fetch their weights).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import numpy as np


class AudioEmbedder(Protocol):
    """Maps audio [B, N] at ``sample_rate`` to embeddings [B, D]."""

    name: str

    def identity(self) -> str:
        """A string that changes whenever the embeddings would: part of the reference-cache key."""
        ...

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        ...


class WhisperEmbedder:
    """Whisper tiny.en encoder states (384-d), averaged over the frames that cover the clip.

    Whisper is trained on 30 s windows padded with silence; a clip is encoded alone (no padding), which
    is ~30x faster and keeps every frame on the clip. Checked here: it runs on 2 s inputs and returns one
    state per 20 ms.
    """

    def __init__(self, model_path: str | None = None, threads: int = 2, model: object | None = None) -> None:
        from faster_whisper import WhisperModel

        from v2a.evaluation.speech import whisper_model_path

        self.model_path = model_path or whisper_model_path()
        self.model = model or WhisperModel(self.model_path, device="cpu", compute_type="int8", cpu_threads=threads)
        self.name = "whisper"
        digest = hashlib.sha256((Path(self.model_path) / "config.json").read_bytes())
        digest.update(str((Path(self.model_path) / "model.bin").stat().st_size).encode())
        self._identity = f"whisper-tiny.en:{digest.hexdigest()[:16]}:unpadded-mean"

    def identity(self) -> str:
        return self._identity

    def embed(self, audio: np.ndarray, sample_rate: int, batch_size: int = 16) -> np.ndarray:
        import ctranslate2

        if sample_rate != 16000:
            raise ValueError(f"Whisper needs 16 kHz audio, got {sample_rate}")
        audio = np.asarray(audio, dtype=np.float32)
        out = []
        for start in range(0, len(audio), batch_size):
            features = np.stack([self.model.feature_extractor(a) for a in audio[start:start + batch_size]])
            features = features[..., : features.shape[-1] // 2 * 2]  # the encoder halves the frame count
            encoded = self.model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features)),
                                              to_cpu=True)
            out.append(np.asarray(encoded, dtype=np.float64).mean(axis=1))
        return np.concatenate(out)
