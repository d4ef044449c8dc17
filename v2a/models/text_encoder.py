"""A small transformer over sentencepiece ids: per-token features and a pooled vector, trained from scratch."""

from __future__ import annotations

import torch
from torch import nn

from v2a.models.layers import sinusoidal


class TextEncoder(nn.Module):
    """Token ids [B, L] + mask [B, L] -> (features [B, L, dim], pooled [B, dim]).

    Pre-norm transformer blocks (torch's ``TransformerEncoderLayer``) with sinusoidal positions, so any
    length works. Padded positions are never attended to and come out as zeros; the pooled vector is
    the mean over real tokens (zeros for a row without any, which the denoiser replaces by its null).
    """

    def __init__(self, *, vocab_size: int, dim: int = 128, depth: int = 2, heads: int = 4,
                 mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"text encoder dim {dim} must be divisible by heads {heads}")
        self.vocab_size = vocab_size
        self.dim = dim
        self.embed = nn.Embedding(vocab_size, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        # enable_nested_tensor=False: one code path in train and eval (the nested fast path changes
        # padded outputs only, but keeping one path keeps the tests meaningful).
        self.blocks = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim), enable_nested_tensor=False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if ids.dim() != 2 or ids.shape != mask.shape:
            raise ValueError(f"ids and mask must both be [B, L], got {tuple(ids.shape)} and {tuple(mask.shape)}")
        mask = mask.bool()
        # Padding (and out-of-vocabulary ids at padded positions) is read as id 0: its value cannot matter.
        ids = torch.where(mask, ids, torch.zeros_like(ids))
        if ids.numel() and int(ids.max()) >= self.vocab_size:
            raise ValueError(f"token id {int(ids.max())} is outside the text encoder's vocabulary "
                             f"({self.vocab_size}): the tokenizer does not match this model")
        positions = torch.arange(ids.shape[1], device=ids.device)
        h = self.embed(ids) + sinusoidal(positions, self.dim).to(self.embed.weight.dtype)[None]
        # A row without any token would make every attention row empty (NaN): let such rows attend to
        # position 0 only; their output is zeroed below anyway.
        empty = ~mask.any(dim=1, keepdim=True)
        attend = mask | (empty & (positions == 0)[None])
        h = self.blocks(h, src_key_padding_mask=~attend)
        h = h * mask[..., None]
        count = mask.sum(dim=1, keepdim=True).clamp_min(1)
        return h, h.sum(dim=1) / count
