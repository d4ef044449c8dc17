"""The vocoder interface that generation, evaluation and sample logging rely on."""

from __future__ import annotations

import torch
from torch import nn

from v2a.audio.mel import LogMel


class Vocoder(nn.Module):
    """Normalised log-mel [B, n_mels, F] -> waveform [B, F * hop] at ``features.spec.sample_rate``."""

    def __init__(self, *, features: LogMel) -> None:
        super().__init__()
        self.features = features

    @property
    def sample_rate(self) -> int:
        return self.features.spec.sample_rate

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError
