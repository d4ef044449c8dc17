"""Visual encoders: one visual token per video frame, from pixels or from a frozen pretrained backbone.

- :class:`FrameCNNEncoder`: a per-frame CNN trained from scratch + temporal convolutions.
- :class:`PretrainedFrameEncoder`: a frozen pretrained backbone (:mod:`v2a.models.backbones`) + the same
  temporal layers; it also takes the backbone's features directly (cached offline by
  ``data_prep/extract_features.py``), so training skips decoding and the backbone.

Both take ``frames`` uint8 [B, T, 3, H, W] and return (tokens [B, T, dim], pooled [B, dim]).
"""

from __future__ import annotations

import torch
from torch import nn

from v2a.models.backbones import FrameBackbone


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
        self.temporal = temporal_blocks(dim, temporal_layers, temporal_kernel)
        self.dim = dim

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if frames.ndim != 5:
            raise ValueError(f"FrameCNNEncoder reads frames [B, T, 3, H, W], got {tuple(frames.shape)} (cached "
                             "features need a pretrained encoder: model/visual_encoder=efficientnet_lite0)")
        batch, time = frames.shape[:2]
        x = frames.flatten(0, 1)
        if x.dtype == torch.uint8:
            x = x.float() / 127.5 - 1
        x = self.proj(self.frame_cnn(x)).view(batch, time, -1)
        return temporal_mix(self.temporal, x)


def temporal_blocks(dim: int, layers: int, kernel: int) -> nn.ModuleList:
    """Residual temporal convolutions over per-frame tokens (GroupNorm: dim is a multiple of 8)."""
    return nn.ModuleList(
        nn.Sequential(nn.Conv1d(dim, dim, kernel, padding=kernel // 2), nn.GroupNorm(8, dim), nn.SiLU())
        for _ in range(layers)
    )


def temporal_mix(blocks: nn.ModuleList, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame tokens [B, T, D] -> (tokens mixed in time [B, T, D], their mean [B, D])."""
    x = x.transpose(1, 2)  # [B, D, T]
    for block in blocks:
        x = x + block(x)  # residual keeps per-frame identity while adding temporal context
    tokens = x.transpose(1, 2)
    return tokens, tokens.mean(dim=1)


class PretrainedFrameEncoder(nn.Module):
    """A frozen pretrained backbone per frame, then trainable LayerNorm + projection + temporal convolutions.

    ``forward`` takes either frames uint8 [B, T, 3, H, W] (the backbone runs, without gradients) or the
    backbone's features [B, T, backbone.dim] as cached by ``data_prep/extract_features.py`` (the backbone is
    skipped). Both give the same tokens: extraction runs this very backbone on the frames the loader reads.
    """

    def __init__(self, *, backbone: FrameBackbone, dim: int = 128, temporal_layers: int = 2,
                 temporal_kernel: int = 5) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = backbone.dim
        self.norm = nn.LayerNorm(backbone.dim)   # backbones differ in scale: normalise before projecting
        self.proj = nn.Linear(backbone.dim, dim)
        self.temporal = temporal_blocks(dim, temporal_layers, temporal_kernel)
        self.dim = dim

    def backbone_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [B, T, 3, H, W] -> backbone features [B, T, feature_dim] (float32, no gradient)."""
        batch, time = frames.shape[:2]
        return self.backbone(frames.flatten(0, 1)).view(batch, time, -1)

    def forward(self, visual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if visual.ndim == 5:
            features = self.backbone_features(visual)
        elif visual.ndim == 3 and visual.shape[-1] == self.feature_dim:
            features = visual
        else:
            raise ValueError(f"{type(self).__name__} takes frames [B, T, 3, H, W] or {self.backbone.name} features "
                             f"[B, T, {self.feature_dim}], got {tuple(visual.shape)}")
        x = self.proj(self.norm(features.to(self.proj.weight.dtype)))
        return temporal_mix(self.temporal, x)
