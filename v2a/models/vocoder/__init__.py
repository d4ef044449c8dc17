"""Mel -> waveform. Every vocoder takes normalised log-mel [B, n_mels, F] and returns [B, F * hop]."""

from v2a.models.vocoder.base import Vocoder
from v2a.models.vocoder.griffin_lim import GriffinLimVocoder

__all__ = ["GriffinLimVocoder", "Vocoder"]
