"""GAN discriminators for vocoder training: multi-period (HiFi-GAN) and multi-resolution (UnivNet/Vocos).

Each sub-discriminator returns (logits, feature maps); the feature maps feed the feature-matching loss.
Channel widths are arguments so a CPU recipe can use narrow ones.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

Output = tuple[torch.Tensor, list[torch.Tensor]]


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.leaky_relu(x, 0.1)



def _run_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> Output:
    """Leaky-ReLU conv stack then the logit conv: (flattened logits, every layer's feature map)."""
    features = []
    for conv in convs:
        x = _leaky(conv(x))
        features.append(x)
    x = post(x)
    features.append(x)
    return x.flatten(1), features

class PeriodDiscriminator(nn.Module):
    """Folds the waveform into [T / p, p] and applies 2-D convolutions along time only."""

    def __init__(self, *, period: int, channels: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.period = period
        widths = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(widths[i], widths[i + 1], (5, 1), (3, 1), padding=(2, 0)))
            for i in range(len(channels))
        )
        self.convs.append(weight_norm(nn.Conv2d(channels[-1], channels[-1], (5, 1), 1, padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, wave: torch.Tensor) -> Output:
        batch, length = wave.shape
        if length % self.period:
            wave = nn.functional.pad(wave, (0, self.period - length % self.period), mode="reflect")
        x = wave.view(batch, 1, -1, self.period)
        return _run_stack(self.convs, self.post, x)


class ResolutionDiscriminator(nn.Module):
    """2-D convolutions over one log-magnitude spectrogram [B, 1, frames, bins]."""

    def __init__(self, *, n_fft: int, hop_length: int, channels: int = 32, layers: int = 4) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [weight_norm(nn.Conv2d(1, channels, (7, 5), padding=(3, 2)))]
        convs += [weight_norm(nn.Conv2d(channels, channels, (5, 3), (1, 2), padding=(2, 1))) for _ in range(layers - 1)]
        convs.append(weight_norm(nn.Conv2d(channels, channels, 3, padding=1)))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, wave: torch.Tensor) -> Output:
        spec = torch.stft(wave.float(), self.n_fft, self.hop_length, window=self.window, return_complex=True)
        x = torch.log(spec.abs().clamp_min(1e-5)).transpose(1, 2).unsqueeze(1)
        return _run_stack(self.convs, self.post, x)


class VocoderDiscriminators(nn.Module):
    """All sub-discriminators: ``forward(wave)`` -> list of (logits, feature maps), one per sub-discriminator."""

    def __init__(self, *, periods: tuple[int, ...] = (2, 3, 5, 7, 11),
                 period_channels: tuple[int, ...] = (16, 32, 64, 128),
                 resolutions: tuple[tuple[int, int], ...] = ((256, 64), (512, 128), (1024, 256)),
                 resolution_channels: int = 32) -> None:
        super().__init__()
        self.subs = nn.ModuleList(
            [PeriodDiscriminator(period=p, channels=tuple(period_channels)) for p in periods]
            + [ResolutionDiscriminator(n_fft=n, hop_length=h, channels=resolution_channels) for n, h in resolutions]
        )
        if not len(self.subs):
            raise ValueError("need at least one period or resolution")

    def forward(self, wave: torch.Tensor) -> list[Output]:
        if wave.ndim != 2:
            raise ValueError(f"expected waveform [B, samples], got {tuple(wave.shape)}")
        return [sub(wave) for sub in self.subs]
