"""The transcript as it is spoken: one phoneme per audio token, embedded with where in the phoneme the token is."""

from __future__ import annotations

import math

import torch
from torch import nn


class PhonemeTrackEncoder(nn.Module):
    """(phoneme ids [B, N], position in the phoneme [B, N]) -> features [B, N, dim], one per audio token.

    A phoneme embedding plus a few sinusoids of the position within the phoneme, then residual 1-D
    convolutions over time so each token also sees its neighbours (co-articulation). Id 0 means "no
    phoneme" (silence, padding). The denoiser *adds* the features to the audio tokens in time, as it adds
    the visual tokens: what is said reaches the audio at the moment it is said.
    """

    def __init__(self, *, vocab_size: int, dim: int = 128, layers: int = 2, kernel: int = 5,
                 position_frequencies: int = 4) -> None:
        super().__init__()
        if vocab_size < 3 or dim < 1 or layers < 0 or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"bad phoneme track encoder: vocab_size={vocab_size}, dim={dim}, layers={layers}, "
                             f"kernel={kernel} (odd)")
        self.dim = dim
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, dim)
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(position_frequencies, dtype=torch.float32),
                             persistent=False)
        self.position = nn.Linear(2 * position_frequencies, dim)
        self.convs = nn.ModuleList(nn.Sequential(nn.Conv1d(dim, dim, kernel, padding=kernel // 2), nn.GELU())
                                   for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        angles = position.float()[..., None] * self.frequencies
        speaking = (ids > 0).float()[..., None]  # no position signal where nothing is said
        h = self.embed(ids) + speaking * self.position(torch.cat([angles.sin(), angles.cos()], dim=-1))
        h = h.transpose(1, 2)
        for conv in self.convs:
            h = h + conv(h)
        return self.norm(h.transpose(1, 2))
