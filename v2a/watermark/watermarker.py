"""The public ``Watermarker``: keyed embed and p-value detection."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from v2a.media import resample, to_mono
from v2a.watermark import detection, embedding, stats
from v2a.watermark.keying import key_pattern, resolve_key
from v2a.watermark.params import WatermarkParams


@dataclass(frozen=True)
class DetectionResult:
    """Outcome of ``Watermarker.detect``.

    ``score`` is the z-score (~N(0, 1) without the mark) of the hypothesis family that gave
    the smallest p-value (see ``stats``); ``p_value`` is the probability, for audio without
    this key's mark, of a result at least this extreme; ``watermarked`` is ``p_value < fpr``.
    ``speed`` is the tempo factor found and ``pitch`` the frequency factor (both 1.0 = unchanged; equal
    for a resampling speed change, ``pitch`` 1.0 for a pitch-preserving one), ``n_hypotheses`` the
    number of (tempo, pitch, shift, window) scores examined.
    """

    score: float
    p_value: float
    watermarked: bool
    speed: float = 1.0
    n_hypotheses: int = 0
    pitch: float = 1.0


class Watermarker:
    """Keyed, inaudible, robust audio watermark with a p-value detector.

    Args:
        key: secret key; ``None`` reads ``$V2A_WATERMARK_KEY`` and otherwise falls back to a
            public default key (logged as a warning: that mark is not secret).
        snr_db: target SNR of the marked audio vs the original, in dB (whole clip).
        max_alpha: cap on the base relative modulation depth (limits the mark on clips whose
            energy is mostly outside the 250-7400 Hz band).
        fpr: false-positive rate; ``detect`` flags ``p_value < fpr``.
        max_speed: speed changes up to +-this fraction are searched by the detector (those within
            ``near_speed``, default +-6 %, at a lower threshold than the rest).
        **params: any other ``WatermarkParams`` field: embedding shape (``level_gamma``,
            ``floor_db``, ``floor_share``: how the energy budget is spread) or geometry
            (embedder and detector must use the same geometry).
    """

    def __init__(self, key: str | None = None, *, snr_db: float = 30.1, max_alpha: float = 0.1,
                 fpr: float = 1e-4, max_speed: float = 0.2, **params: float) -> None:
        self.params = dataclasses.replace(WatermarkParams(), snr_db=snr_db, max_alpha=max_alpha,
                                          fpr=fpr, max_speed=max_speed, **params)
        self._pattern = key_pattern(resolve_key(key), self.params.pattern_shape)

    @property
    def fpr(self) -> float:
        return self.params.fpr

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mark ``audio`` (``[samples]`` or ``[channels, samples]`` float32 in [-1, 1]).

        Returns the same shape and dtype. Silent audio (or audio with nothing in the band)
        comes back unchanged, since there is nothing to modulate.
        """
        return embedding.embed(audio, int(sample_rate), self._pattern, self.params)

    def detect(self, audio: np.ndarray, sample_rate: int) -> DetectionResult:
        """Look for this key's mark; multi-channel audio is mixed down to mono first."""
        p = self.params
        x16 = resample(to_mono(audio), int(sample_rate), p.analysis_sr)
        views = detection.detector_views(x16, p)
        wins = [w for w in detection.windows(views[0].shape[0], p) if w.stop - w.start >= p.period_frames]
        best: tuple[float, float, float, float] | None = None  # (p-value, z, tempo, pitch) of the best
        n_hyp = 0
        for win in wins:
            for view in views:
                z, tempo, pitch = detection.correlate(view[win], self._pattern, p)
                n_hyp += z.size
                pv, zz, tp, pt = stats.family_p_value(z, tempo, pitch, aligned_shift=(-win.start) % p.period_frames,
                                                      near_speed=p.near_speed)
                pv = min(1.0, pv * len(views))  # Bonferroni over the views
                if best is None or pv < best[0]:
                    best = (pv, zz, tp, pt)
        if best is None:  # shorter than one pattern period: nothing to score
            return DetectionResult(score=0.0, p_value=1.0, watermarked=False, speed=1.0, n_hypotheses=0)
        # Sidak over windows: the smallest of k window p-values.
        p_value = float(-np.expm1(len(wins) * np.log1p(-best[0]))) if best[0] < 1.0 else 1.0
        return DetectionResult(score=best[1], p_value=p_value, watermarked=p_value < p.fpr,
                               speed=best[2], n_hypotheses=n_hyp, pitch=best[3])
