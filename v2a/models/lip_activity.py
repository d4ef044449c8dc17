"""Where a face is speaking: a per-video-frame speech-activity classifier on the frames (the aligner's network)."""

from __future__ import annotations

import torch
from torch import nn


class SpeechActivityNet(nn.Module):
    """Frames [B, T, 3, H, W] (uint8) -> logits [B, T] that the face on screen is speaking in each frame.

    The visual encoder is the V2A model's kind (per-frame tokens with temporal convolutions), so mouth
    motion over neighbouring frames is visible to every frame's decision. ``opening=True`` adds a second
    head that reads how far the mouth is open in each frame (0 shut .. 1 widest; :meth:`predict`): the
    aligner places word onsets where the mouth closes between words.
    """

    def __init__(self, *, visual_encoder: nn.Module, hidden: int = 64, opening: bool = False) -> None:
        super().__init__()
        self.visual_encoder = visual_encoder
        self.head = nn.Sequential(nn.Linear(visual_encoder.dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.opening_head = (nn.Sequential(nn.Linear(visual_encoder.dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
                             if opening else None)

    def predict(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(speaking logits [B, T], mouth opening [B, T] or None without the opening head)."""
        tokens, _ = self.visual_encoder(frames)
        opening = self.opening_head(tokens).squeeze(-1) if self.opening_head is not None else None
        return self.head(tokens).squeeze(-1), opening

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.predict(frames)[0]
