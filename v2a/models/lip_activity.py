"""Where a face is speaking: a per-video-frame speech-activity classifier on the frames (the aligner's network)."""

from __future__ import annotations

import torch
from torch import nn


class SpeechActivityNet(nn.Module):
    """Frames [B, T, 3, H, W] (uint8) -> logits [B, T] that the face on screen is speaking in each frame.

    The visual encoder is the V2A model's kind (per-frame tokens with temporal convolutions), so mouth
    motion over neighbouring frames is visible to every frame's decision.
    """

    def __init__(self, *, visual_encoder: nn.Module, hidden: int = 64) -> None:
        super().__init__()
        self.visual_encoder = visual_encoder
        self.head = nn.Sequential(nn.Linear(visual_encoder.dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        tokens, _ = self.visual_encoder(frames)
        return self.head(tokens).squeeze(-1)
