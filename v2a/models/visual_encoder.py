"""Per-frame CNN + temporal convolution: one visual token per video frame."""

from __future__ import annotations

import torch
from torch import nn


class FrameCNNEncoder(nn.Module):
    """uint8/float frames [B, T, 3, H, W] -> tokens [B, T, dim] and a pooled clip token [B, dim].

    The 2-D CNN sees each frame alone (what is where); the temporal convolutions mix neighbouring
    frames, which is what exposes motion and contacts (when something happens).
    """

    def __init__(self, *, dim: int = 128, channels: tuple[int, ...] = (16, 32, 64), temporal_layers: int = 2,
                 temporal_kernel: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for out_ch in channels:
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1), nn.GroupNorm(8, out_ch), nn.SiLU()]
            in_ch = out_ch
        self.frame_cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.proj = nn.Linear(in_ch, dim)
        self.temporal = nn.ModuleList(
            nn.Sequential(nn.Conv1d(dim, dim, temporal_kernel, padding=temporal_kernel // 2), nn.GroupNorm(8, dim), nn.SiLU())
            for _ in range(temporal_layers)
        )
        self.dim = dim

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, time = frames.shape[:2]
        x = frames.flatten(0, 1)
        if x.dtype == torch.uint8:
            x = x.float() / 127.5 - 1
        x = self.proj(self.frame_cnn(x)).view(batch, time, -1).transpose(1, 2)  # [B, D, T]
        for block in self.temporal:
            x = x + block(x)  # residual keeps per-frame identity while adding temporal context
        tokens = x.transpose(1, 2)
        return tokens, tokens.mean(dim=1)
