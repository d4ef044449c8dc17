"""A Vocos-style generator: ConvNeXt backbone at the mel frame rate + an inverse-STFT head.

Everything runs at the frame rate (100 frames/s) and one ``torch.istft`` makes the waveform, so it is
far cheaper than upsampling-convolution vocoders (HiFi-GAN) and than Griffin-Lim's 32 STFT round trips.

With ``magnitude_prior`` the head's log-magnitude is a zero-initialised residual on top of
:class:`MelMagnitudePrior` (the mel filterbank's pseudo-inverse), which needs ``n_fft`` equal to the mel's.
"""

from __future__ import annotations

import torch
from torch import nn

from v2a.models.vocoder.prior import MelMagnitudePrior


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

    def __init__(self, *, dim: int, n_fft: int, hop_length: int, residual: bool = False,
                 max_magnitude: float = 1e2) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.max_magnitude = max_magnitude
        self.proj = nn.Linear(dim, n_fft + 2)
        if residual:  # the residual on a prior starts at zero: step 0 outputs the prior's magnitude
            nn.init.zeros_(self.proj.weight[: n_fft // 2 + 1])
            nn.init.zeros_(self.proj.bias[: n_fft // 2 + 1])
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def spectrogram(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """Features [B, dim, F] (+ a log-magnitude prior [B, n_fft // 2 + 1, F]) -> complex STFT."""
        mag, phase = self.proj(x.transpose(1, 2)).transpose(1, 2).chunk(2, dim=1)
        if prior is not None:
            mag = mag + prior
        # exp of a clamped log keeps the magnitude positive and the gradient finite early in training
        mag = torch.exp(mag.clamp(max=10.0)).clamp(max=self.max_magnitude)
        # cos/sin of one predicted angle (as Vocos): the phase is free, its wrapping is harmless
        return torch.polar(mag.float(), phase.float())

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop_length, self.n_fft, self.window, center=True, length=length)

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """The analysis that matches :meth:`istft`: waveform [B, N] -> complex [B, n_fft // 2 + 1, N // hop + 1]."""
        return torch.stft(wave, self.n_fft, self.hop_length, self.n_fft, self.window, center=True, return_complex=True)


class VocosGenerator(nn.Module):
    """Normalised log-mel [B, n_mels, F] -> waveform [B, F * hop_length].

    ``n_fft`` of the head is its own choice (4 x hop, as Vocos): shorter windows than the mel's keep
    impacts sharp, but a magnitude prior needs the mel's own ``n_fft``.

    ``magnitude_prior`` holds the mel settings of :class:`MelMagnitudePrior` (``n_fft``, ``sample_rate``,
    ``mean``, ``std``, ``log_floor``, ``log_ceil``) or is None (magnitude from scratch, as old exports).
    """

    def __init__(self, *, n_mels: int = 80, hop_length: int = 160, dim: int = 192, hidden: int = 576,
                 depth: int = 6, kernel_size: int = 7, n_fft: int = 640, magnitude_prior: dict | None = None,
                 max_magnitude: float = 1e2) -> None:
        super().__init__()
        if n_fft < hop_length or n_fft % 2:
            raise ValueError(f"n_fft must be even and >= hop_length, got {n_fft} and {hop_length}")
        self.prior = None
        if magnitude_prior is not None:
            prior = dict(magnitude_prior)
            if prior.get("n_fft") != n_fft:
                raise ValueError(f"a magnitude prior needs the head's n_fft ({n_fft}) to equal the mel's "
                                 f"({prior.get('n_fft')})")
            self.prior = MelMagnitudePrior(n_mels=n_mels, **prior)
        self.n_mels = n_mels
        self.hop_length = hop_length
        self.embed = nn.Conv1d(n_mels, dim, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim=dim, hidden=hidden, kernel_size=kernel_size, layer_scale=1.0 / depth)
            for _ in range(depth)
        )
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = ISTFTHead(dim=dim, n_fft=n_fft, hop_length=hop_length, residual=self.prior is not None,
                              max_magnitude=max_magnitude)

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
        features = self.backbone(mel)
        prior = None if self.prior is None else self.prior(nn.functional.pad(mel, (0, 1), mode="replicate"))
        return self.head.spectrogram(features, prior)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head.istft(self.spectrogram(mel), mel.shape[-1] * self.hop_length)
