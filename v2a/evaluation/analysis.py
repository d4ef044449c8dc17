"""Per-clip analysis of one set of audio clips (generated, ground truth or mismatched).

Everything that later becomes a metric is first measured per clip here, by the same tools for every
condition, so the three columns of a report are comparable; the ground-truth analysis is what the
reference cache stores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from v2a.evaluation.onsets import OnsetDetector
from v2a.evaluation.speech import lip_envelope_correlation
from v2a.text.phoneme_timing import mouth_track

log = logging.getLogger(__name__)


@dataclass
class Tools:
    """The measuring instruments of one evaluation; ``identity()`` keys the reference cache."""

    features: torch.nn.Module
    detector: OnsetDetector | None = None  # calibrated (or read from the cache) before any analysis
    embedders: list = field(default_factory=list)
    classifier: object | None = None  # a ClassifierEmbedder: posteriors (and it is usually an embedder too)
    recognizer: object | None = None  # a WhisperRecognizer
    watermarker: object | None = None
    notes: dict[str, str] = field(default_factory=dict)  # tools left out, and why (-> metrics.json "skipped")

    def identity(self, exclude_detector: bool = False) -> dict:
        """What the reference measurements depend on (the reference-cache key)."""
        identity = {"embedders": sorted(e.identity() for e in self.embedders),
                    "classifier": self.classifier.identity() if self.classifier is not None else None,
                    "recognizer": "whisper-tiny.en" if self.recognizer is not None else None,
                    "watermark": watermark_identity(self.watermarker)}
        if not exclude_detector and self.detector is not None:
            identity["detector"] = [round(self.detector.threshold, 6), round(self.detector.latency, 6)]
        return identity

    def make_detector(self, stored: dict) -> OnsetDetector:
        """The detector of a cached calibration, on this spec's mel frame rate."""
        return OnsetDetector(threshold=float(stored["threshold"]), latency=float(stored["latency"]),
                             frame_rate=float(self.features.spec.mel_rate))


def watermark_identity(watermarker: object | None) -> str | None:
    """A digest of the watermark key pattern and parameters (the false-positive rate depends on both)."""
    if watermarker is None:
        return None
    import hashlib

    pattern = getattr(watermarker, "_pattern", None)
    digest = hashlib.sha256(repr(getattr(watermarker, "params", "")).encode())
    if pattern is not None:
        digest.update(np.asarray(pattern).tobytes())
    return digest.hexdigest()[:16]


def empty_analysis(tools: Tools) -> dict[str, list]:
    keys = ["onsets", "candidates", "text", "watermark_p", "lip"]
    keys += [f"emb/{e.name}" for e in tools.embedders]
    if tools.classifier is not None:
        keys += [f"post/{head}" for head in tools.classifier.vocabularies]
    return {k: [] for k in keys}


@torch.no_grad()
def analyse(audio: torch.Tensor, metas: list[dict], tools: Tools, sample_rate: int, fps: float,
            into: dict[str, list]) -> torch.Tensor:
    """Measure clips ``audio`` [B, N]; append per-clip results to ``into``; returns their mels."""
    mel = tools.features(audio.to(next(iter(tools.features.buffers())).device))
    into["onsets"] += [d.tolist() for d in tools.detector(mel)]
    into["candidates"] += [[t.tolist(), s.tolist()] for t, s in tools.detector.candidates(mel)]
    wave = audio.detach().cpu().numpy()
    for embedder in tools.embedders:
        into[f"emb/{embedder.name}"] += list(embedder.embed(wave, sample_rate))
    if tools.classifier is not None:
        for head, probs in tools.classifier.posteriors(wave, sample_rate).items():
            into[f"post/{head}"] += [p.tolist() for p in probs]
    for clip, meta in zip(wave, metas, strict=True):
        has_text = bool((meta.get("transcript") or "").strip())
        into["text"].append(tools.recognizer.transcribe(clip, sample_rate) if has_text and tools.recognizer else None)
        into["watermark_p"].append(float(tools.watermarker.detect(clip, sample_rate).p_value)
                                   if tools.watermarker is not None else None)
        mouth = mouth_track(meta)
        into["lip"].append(lip_envelope_correlation(clip, mouth, sample_rate, fps) if mouth is not None else None)
    return mel


def as_arrays(analysis: dict[str, list]) -> dict[str, list]:
    """Embeddings as one float64 array per embedder (after all batches were appended)."""
    return {k: (np.asarray(v, dtype=np.float64) if k.startswith("emb/") else v) for k, v in analysis.items()}
