"""Audio side of the sync stage: one embedding per video frame from a log-mel window."""

from __future__ import annotations

import torch
from torch import nn


class MelFrameEncoder(nn.Module):
    """Normalised log-mel [B, n_mels, T * mel_per_frame] -> per-video-frame embeddings [B, T, dim].

    Temporal 1-D convolutions over mel frames (short receptive field: an onset should light up the
    frame it falls in, not its neighbours), then average pooling down to the video frame rate.
    """

    def __init__(self, *, n_mels: int = 80, dim: int = 128, hidden: int = 128, layers: int = 3,
                 mel_frames_per_video_frame: int = 4) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv1d(n_mels, hidden, 3, padding=1), nn.GroupNorm(8, hidden), nn.SiLU()]
        for _ in range(layers - 1):
            blocks += [nn.Conv1d(hidden, hidden, 3, padding=1), nn.GroupNorm(8, hidden), nn.SiLU()]
        self.body = nn.Sequential(*blocks)
        self.pool = nn.AvgPool1d(mel_frames_per_video_frame, stride=mel_frames_per_video_frame)
        self.proj = nn.Linear(hidden, dim)
        self.mel_frames_per_video_frame = mel_frames_per_video_frame
        self.dim = dim

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.shape[-1] % self.mel_frames_per_video_frame:
            raise ValueError(f"{mel.shape[-1]} mel frames is not a whole number of video frames "
                             f"({self.mel_frames_per_video_frame} mel frames each)")
        return self.proj(self.pool(self.body(mel)).transpose(1, 2))
