"""The trainable V2A network: visual encoder + denoiser, exposed as a velocity function."""

from __future__ import annotations

import torch
from torch import nn

from v2a.models.denoiser import MelDenoiser


class V2ANet(nn.Module):
    """Encodes frames once, then answers velocity queries for any (x_t, t, keep-mask)."""

    def __init__(self, *, visual_encoder: nn.Module, denoiser: MelDenoiser) -> None:
        super().__init__()
        self.visual_encoder = visual_encoder
        self.denoiser = denoiser

    def encode(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens, pooled = self.visual_encoder(frames)
        return {"visual_tokens": tokens, "pooled": pooled}

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor],
                keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser(x, t, visual_mask=keep, **cond)
