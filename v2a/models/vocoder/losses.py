"""Vocoder training losses: multi-resolution STFT, log-mel L1, least-squares GAN and feature matching."""

from __future__ import annotations

import torch
from torch import nn

from v2a.audio.mel import LogMel
from v2a.audio.spectral import log_spectral_distance


class MultiResolutionSTFTLoss(nn.Module):
    """Mean over resolutions of spectral convergence + L1 of log magnitudes (Parallel WaveGAN).

    Short windows (128 samples = 8 ms at 16 kHz) watch transients, long ones harmonics.
    """

    def __init__(self, *, resolutions: tuple[tuple[int, int], ...] = ((128, 32), (256, 64), (512, 128), (1024, 256)),
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.resolutions = [tuple(r) for r in resolutions]
        self.eps = eps
        for n_fft, _ in self.resolutions:
            self.register_buffer(f"window_{n_fft}", torch.hann_window(n_fft), persistent=False)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        total = fake.new_zeros(())
        for n_fft, hop in self.resolutions:
            window = getattr(self, f"window_{n_fft}")
            f = torch.stft(fake.float(), n_fft, hop, window=window, return_complex=True).abs()
            r = torch.stft(real.float(), n_fft, hop, window=window, return_complex=True).abs()
            convergence = torch.linalg.norm(r - f) / torch.linalg.norm(r).clamp_min(self.eps)
            log_mag = (torch.log(f.clamp_min(self.eps)) - torch.log(r.clamp_min(self.eps))).abs().mean()
            total = total + convergence + log_mag
        return total / len(self.resolutions)


class LogSpectralLoss(nn.Module):
    """The benchmark's log-spectral distance (dB, RMS over bins, mean over frames) as a loss.

    Log-magnitude L1 tolerates deep spectral dips; this RMS in dB does not, and it is what the benchmark
    scores. ``eps`` (power floor) is larger than the metric's 1e-8 to keep gradients of near-empty bins bounded.
    """

    def __init__(self, *, n_fft: int = 1024, hop_length: int = 160, eps: float = 1e-6) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.eps = n_fft, hop_length, eps

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return log_spectral_distance(fake, real, n_fft=self.n_fft, hop_length=self.hop_length, eps=self.eps).mean()


def mel_l1(features: LogMel, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 between natural-log mels of two waveforms (the copy-synthesis distance the benchmark reports)."""
    return (features.denormalize(features(fake)) - features.denormalize(features(real))).abs().mean()


def discriminator_loss(real: list, fake: list) -> torch.Tensor:
    """Least-squares GAN: real logits -> 1, fake logits -> 0 (summed over sub-discriminators)."""
    return sum(((1 - r) ** 2).mean() + (f**2).mean() for (r, _), (f, _) in zip(real, fake, strict=True))


def generator_adversarial_loss(fake: list) -> torch.Tensor:
    """Least-squares GAN: fake logits -> 1 (mean over sub-discriminators)."""
    return sum(((1 - f) ** 2).mean() for f, _ in fake) / len(fake)


def feature_matching_loss(real: list, fake: list) -> torch.Tensor:
    """L1 between discriminator feature maps of real (detached) and generated audio, mean over layers."""
    terms = [(rf.detach() - ff).abs().mean() for (_, r), (_, f) in zip(real, fake, strict=True)
             for rf, ff in zip(r, f, strict=True)]
    return sum(terms) / len(terms)
