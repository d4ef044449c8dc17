"""The flow-matching denoiser: a transformer over mel tokens with time-aligned visual tokens."""

from __future__ import annotations

import torch
from torch import nn

from v2a.models.layers import AdaLNBlock, TimestepEmbedding, sinusoidal
from v2a.shapes import ClipSpec


class MelDenoiser(nn.Module):
    """Predicts the flow velocity of a noisy normalised log-mel.

    Audio tokens are groups of ``spec.mel_frames_per_token`` mel frames. Visual tokens (one per video
    frame) are repeated ``spec.tokens_per_video_frame`` times and **added** to the audio tokens they
    cover (``align_visual=True``), so token i sees the frame shown while it sounds. With
    ``align_visual=False`` only the pooled clip token conditions the model (the ablation).
    ``visual_mask`` (bool [B]) replaces visual conditioning by learned null embeddings (CFG dropout).
    """

    def __init__(self, *, spec: ClipSpec, visual_dim: int, width: int = 128, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 4.0, align_visual: bool = True) -> None:
        super().__init__()
        self.spec = spec
        self.align_visual = align_visual
        self.width = width
        self.in_proj = nn.Linear(spec.token_dim, width)
        self.visual_proj = nn.Linear(visual_dim, width)
        self.pooled_proj = nn.Linear(visual_dim, width)
        self.null_visual = nn.Parameter(torch.zeros(width))
        self.null_pooled = nn.Parameter(torch.zeros(width))
        self.time_embed = TimestepEmbedding(width)
        self.blocks = nn.ModuleList(AdaLNBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.final_mod = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out_proj = nn.Linear(width, spec.token_dim)
        nn.init.zeros_(self.final_mod[1].weight)
        nn.init.zeros_(self.final_mod[1].bias)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def tokenize(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, F] -> [B, F / k, n_mels * k] (k mel frames per token)."""
        batch, n_mels, frames = mel.shape
        k = self.spec.mel_frames_per_token
        return mel.reshape(batch, n_mels, frames // k, k).permute(0, 2, 1, 3).reshape(batch, frames // k, n_mels * k)

    def untokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, n_tokens, _ = tokens.shape
        k = self.spec.mel_frames_per_token
        return tokens.reshape(batch, n_tokens, -1, k).permute(0, 2, 1, 3).reshape(batch, -1, n_tokens * k)

    def align(self, visual_tokens: torch.Tensor, n_audio_tokens: int) -> torch.Tensor:
        """[B, T_v, D] -> [B, T_a, D]: each video frame's token repeated over the audio tokens it covers."""
        aligned = visual_tokens.repeat_interleave(self.spec.tokens_per_video_frame, dim=1)
        if aligned.shape[1] < n_audio_tokens:  # a trailing partial frame: hold the last one
            aligned = torch.cat([aligned, aligned[:, -1:].expand(-1, n_audio_tokens - aligned.shape[1], -1)], dim=1)
        return aligned[:, :n_audio_tokens]

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, visual_tokens: torch.Tensor, pooled: torch.Tensor,
                visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.in_proj(self.tokenize(x))
        n_tokens = h.shape[1]
        # Audio positions in units of video frames, so audio and video share one positional clock.
        positions = torch.arange(n_tokens, device=x.device) / self.spec.tokens_per_video_frame
        h = h + sinusoidal(positions, self.width)[None]
        keep = torch.ones(x.shape[0], dtype=torch.bool, device=x.device) if visual_mask is None else visual_mask
        keep = keep[:, None]
        pooled_h = torch.where(keep, self.pooled_proj(pooled), self.null_pooled)
        if self.align_visual:
            visual = self.visual_proj(self.align(visual_tokens, n_tokens))
            h = h + torch.where(keep[:, :, None], visual, self.null_visual)
        cond = self.time_embed(t) + pooled_h
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.final_mod(cond)[:, None].chunk(2, dim=-1)
        return self.untokenize(self.out_proj(self.final_norm(h) * (1 + scale) + shift))
