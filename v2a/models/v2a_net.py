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
        """Frames [B, T, 3, H, W] -> visual conditions (per-frame tokens and a pooled vector)."""
        tokens, pooled = self.visual_encoder(frames)
        return {"visual_tokens": tokens, "pooled": pooled}

    def forward(self, x: torch.Tensor | None = None, t: torch.Tensor | None = None,
                cond: dict[str, torch.Tensor] | None = None, keep: torch.Tensor | None = None, *,
                frames: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """The velocity at (x_t, t) given ``cond``; or, given only ``frames``, the visual conditions.

        Encoding is reachable through forward because FSDP gathers a wrapped unit's weights only when
        the unit itself is called: code that may run sharded calls ``net(frames=...)``, not ``encode``.
        """
        if frames is not None:
            return self.encode(frames)
        if x is None or t is None or cond is None:
            raise TypeError("V2ANet needs (x, t, cond) or frames=")
        return self.denoiser(x, t, visual_mask=keep, **cond)
