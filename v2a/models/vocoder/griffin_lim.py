"""Griffin-Lim: the zero-training vocoder (torchaudio's InverseMelScale + GriffinLim)."""

from __future__ import annotations

import torch
import torchaudio

from v2a.audio.mel import LogMel
from v2a.models.vocoder.base import Vocoder


class GriffinLimVocoder(Vocoder):
    def __init__(self, *, features: LogMel, n_iter: int = 32, momentum: float = 0.99) -> None:
        super().__init__(features=features)
        spec = features.spec
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=spec.n_fft // 2 + 1, n_mels=spec.n_mels, sample_rate=spec.sample_rate, f_min=0.0,
            f_max=spec.sample_rate / 2,
        )
        self.register_buffer("window", torch.hann_window(spec.n_fft), persistent=False)
        self.n_iter = n_iter
        self.momentum = momentum

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        magnitude_mel = torch.exp(self.features.denormalize(mel.float()))
        linear = self.inverse_mel(magnitude_mel).clamp_min(0)
        # LogMel drops the final centred frame; restore it so istft yields exactly F * hop samples
        linear = torch.nn.functional.pad(linear, (0, 1), mode="replicate")
        length = mel.shape[-1] * self.features.spec.hop_length
        spec = self.features.spec
        wave = torchaudio.functional.griffinlim(
            linear, self.window, spec.n_fft, spec.hop_length, spec.n_fft, 1.0, self.n_iter, self.momentum, length, False
        )
        return wave.clamp(-1, 1)
