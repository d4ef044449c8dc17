"""Distances between generated and reference spectra (the vocoder's output included)."""

from __future__ import annotations

import torch
import torchaudio


def log_spectral_distance(generated: torch.Tensor, reference: torch.Tensor, *, n_fft: int = 1024,
                          hop_length: int = 160, eps: float = 1e-8) -> torch.Tensor:
    """LSD in dB per clip [B]: sqrt of the mean over frequency of the squared dB difference of the power
    spectra, averaged over frames (the definition used in speech super-resolution and V2A papers)."""
    spectrogram = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop_length, power=2.0).to(generated.device)
    a = 10 * torch.log10(spectrogram(generated.float()) + eps)
    b = 10 * torch.log10(spectrogram(reference.float()) + eps)
    return ((a - b) ** 2).mean(dim=-2).sqrt().mean(dim=-1)


def mel_l1(generated_mel: torch.Tensor, reference_mel: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of standardised log-mels per clip [B]."""
    return (generated_mel - reference_mel).abs().mean(dim=(1, 2))
