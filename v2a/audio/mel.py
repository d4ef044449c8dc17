"""Normalised log-mel features: the space the denoiser generates in and vocoders invert."""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

from v2a.shapes import ClipSpec


class LogMel(nn.Module):
    """Waveform -> normalised log-mel, roughly in [-1, 1].

    ``normalize`` maps ``log(mel)`` from ``[log_floor, log_ceil]`` to ``[-1, 1]`` so that a unit
    Gaussian is a sensible flow-matching source; ``denormalize`` undoes it for vocoders.
    """

    def __init__(self, *, spec: ClipSpec, log_floor: float = -8.0, log_ceil: float = 6.0) -> None:
        super().__init__()
        self.spec = spec
        self.log_floor = log_floor
        self.log_ceil = log_ceil
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=spec.sample_rate,
            n_fft=spec.n_fft,
            hop_length=spec.hop_length,
            n_mels=spec.n_mels,
            f_min=0.0,
            f_max=spec.sample_rate / 2,
            power=1.0,
            center=True,
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``wave`` [B, samples] -> normalised log-mel [B, n_mels, samples // hop]."""
        mel = self.mel(wave.float())
        n_frames = wave.shape[-1] // self.spec.hop_length
        mel = mel[..., :n_frames]  # center=True yields one extra frame; keep the grid exact
        return self.normalize(torch.log(mel.clamp_min(math.exp(self.log_floor))))

    def normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        return 2 * (log_mel - self.log_floor) / (self.log_ceil - self.log_floor) - 1

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised features -> natural-log magnitude mel."""
        return (x.clamp(-1, 1) + 1) / 2 * (self.log_ceil - self.log_floor) + self.log_floor
