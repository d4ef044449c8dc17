"""A Vocos-style generator: ConvNeXt backbone at the mel frame rate + an inverse-STFT head.

Everything runs at the frame rate (100 frames/s) and one ``torch.istft`` makes the waveform, so it is
far cheaper than upsampling-convolution vocoders (HiFi-GAN) and than Griffin-Lim's 32 STFT round trips.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> MLP (GELU) -> layer scale, with a residual connection."""

    def __init__(self, *, dim: int, hidden: int, kernel_size: int = 7, layer_scale: float = 0.1) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, dim, F] -> [B, dim, F]."""
        y = self.dwconv(x).transpose(1, 2)
        y = self.fc2(self.act(self.fc1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class ISTFTHead(nn.Module):
    """Features [B, dim, F] -> log-magnitude and phase of ``n_fft // 2 + 1`` bins -> waveform via iSTFT."""

    def __init__(self, *, dim: int, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.proj = nn.Linear(dim, n_fft + 2)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """Features [B, dim, F] -> complex STFT [B, n_fft // 2 + 1, F]."""
        mag, phase = self.proj(x.transpose(1, 2)).transpose(1, 2).chunk(2, dim=1)
        # exp of a clamped log keeps the magnitude positive and the gradient finite early in training
        mag = torch.exp(mag.clamp(max=10.0)).clamp(max=1e2)
        # cos/sin of one predicted angle (as Vocos): the phase is free, its wrapping is harmless
        return torch.polar(mag.float(), phase.float())

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop_length, self.n_fft, self.window, center=True, length=length)

    def forward(self, x: torch.Tensor, length: int) -> torch.Tensor:
        return self.istft(self.spectrogram(x), length)


class VocosGenerator(nn.Module):
    """Normalised log-mel [B, n_mels, F] -> waveform [B, F * hop_length].

    ``n_fft`` of the head is its own choice (4 x hop, as Vocos): shorter windows than the mel's keep
    impacts sharp.
    """

    def __init__(self, *, n_mels: int = 80, hop_length: int = 160, dim: int = 192, hidden: int = 576,
                 depth: int = 6, kernel_size: int = 7, n_fft: int = 640) -> None:
        super().__init__()
        if n_fft < hop_length or n_fft % 2:
            raise ValueError(f"n_fft must be even and >= hop_length, got {n_fft} and {hop_length}")
        self.n_mels = n_mels
        self.hop_length = hop_length
        self.embed = nn.Conv1d(n_mels, dim, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim=dim, hidden=hidden, kernel_size=kernel_size, layer_scale=1.0 / depth)
            for _ in range(depth)
        )
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = ISTFTHead(dim=dim, n_fft=n_fft, hop_length=hop_length)

    def backbone(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel [B, n_mels, F] -> features [B, dim, F + 1]."""
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"expected mel [B, {self.n_mels}, F], got {tuple(mel.shape)}")
        # The features keep F = samples // hop frames (the last centred frame is dropped); a centred iSTFT
        # needs F + 1 frames for F * hop samples, so repeat the last frame.
        x = nn.functional.pad(mel, (0, 1), mode="replicate")
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x.transpose(1, 2)).transpose(1, 2)

    def spectrogram(self, mel: torch.Tensor) -> torch.Tensor:
        """The predicted complex STFT [B, n_fft // 2 + 1, F + 1] of the waveform."""
        return self.head.spectrogram(self.backbone(mel))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(mel), mel.shape[-1] * self.hop_length)
