"""Normalised log-mel features: the space the denoiser generates in and vocoders invert."""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

from v2a.shapes import ClipSpec


class LogMel(nn.Module):
    """Waveform -> standardised log-mel: ``(log(mel) - mean) / std``.

    Flow matching starts from unit Gaussian noise, so the data should have roughly unit scale: with
    a range-based normalisation the benchmark's mels had std 0.16 and the model spent its capacity
    on the scale. ``mean``/``std`` are data statistics of natural-log magnitude mels (config values;
    the defaults were measured on the synthetic benchmark's validation split). ``log_floor`` and
    ``log_ceil`` bound what vocoders receive.
    """

    def __init__(self, *, spec: ClipSpec, mean: float = -1.13, std: float = 1.08, log_floor: float = -8.0,
                 log_ceil: float = 6.0) -> None:
        super().__init__()
        if std <= 0 or log_ceil <= log_floor:
            raise ValueError(f"need std > 0 and log_ceil > log_floor, got {std}, {log_floor}, {log_ceil}")
        self.spec = spec
        self.mean = mean
        self.std = std
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
        return (log_mel - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised features -> natural-log magnitude mel, clamped to [log_floor, log_ceil]."""
        return (x * self.std + self.mean).clamp(self.log_floor, self.log_ceil)
