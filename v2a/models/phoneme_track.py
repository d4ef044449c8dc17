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

    ``prior_dim`` (the denoiser's token width, n_mels x mel frames per token) adds a linear head that
    predicts the mel tokens being spoken from the features (:meth:`prior`), trained by regression beside
    the flow loss, as Grad-TTS trains its encoder's mel prior: the regression gets clean gradients
    where the flow loss sees the speech through noise, so the phoneme features learn what each phoneme
    sounds like in a few hundred steps (docs/benchmarks.md, dialogue_prior). The sampler can start from
    the prior (the sampler's ``prior_start``). ``voice_dim`` (the prompt encoder's width) lets the pooled
    prompt shape the prior, so the voice the prompt names reaches the sampling start. ``visual_dim`` (the visual
    tokens' width) lets the frame-aligned visual tokens shape it: the phonemes say *what* is heard, the mouth how
    loud it is at each moment, so the sampling start already follows the lips.
    """

    def __init__(self, *, vocab_size: int, dim: int = 128, layers: int = 2, kernel: int = 5,
                 position_frequencies: int = 4, prior_dim: int | None = None, voice_dim: int | None = None,
                 visual_dim: int | None = None) -> None:
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
        self.prior_dim = prior_dim
        self.prior_head = nn.Linear(dim, prior_dim) if prior_dim else None
        # The voice: the pooled prompt ("a woman speaking") shifts the prior's features, so the expected mel
        # carries the voice the prompt asks for. Zero at first: the prior starts as the voice-free one.
        self.voice = nn.Linear(voice_dim, dim) if (voice_dim and prior_dim) else None
        if self.voice is not None:
            nn.init.zeros_(self.voice.weight)
            nn.init.zeros_(self.voice.bias)
        # The mouth: per-token visual features shift the prior's features (zero at first, as the voice).
        self.visual = (nn.Sequential(nn.Linear(visual_dim, dim), nn.GELU(), nn.Linear(dim, dim))
                       if (visual_dim and prior_dim) else None)
        if self.visual is not None:
            nn.init.zeros_(self.visual[-1].weight)
            nn.init.zeros_(self.visual[-1].bias)

    @property
    def has_prior(self) -> bool:
        return self.prior_head is not None

    @property
    def reads_video(self) -> bool:
        """Whether the prior reads the frame-aligned visual tokens (built with ``visual_dim``)."""
        return self.visual is not None

    def prior(self, features: torch.Tensor, voice: torch.Tensor | None = None,
              visual: torch.Tensor | None = None) -> torch.Tensor:
        """Features [B, N, dim] -> the predicted mel tokens [B, N, prior_dim] (the expected spoken sound).
        ``voice`` [B, voice_dim] (the pooled prompt; encoders built with ``voice_dim``) shifts every token's
        features before the head; ``visual`` [B, N, visual_dim] (the visual tokens, one per audio token; encoders
        built with ``visual_dim``) shifts each token's own. None leaves them."""
        if self.prior_head is None:
            raise ValueError("this phoneme encoder has no prior head (prior_dim is not set)")
        if self.voice is not None and voice is not None:
            features = features + self.voice(voice)[:, None]
        if self.visual is not None and visual is not None:
            features = features + self.visual(visual[:, : features.shape[1]])
        return self.prior_head(features)

    def forward(self, ids: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        angles = position.float()[..., None] * self.frequencies
        speaking = (ids > 0).float()[..., None]  # no position signal where nothing is said
        h = self.embed(ids) + speaking * self.position(torch.cat([angles.sin(), angles.cos()], dim=-1))
        h = h.transpose(1, 2)
        for conv in self.convs:
            h = h + conv(h)
        return self.norm(h.transpose(1, 2))
