"""A small log-mel CNN that classifies clips (material, scene category).

Its penultimate layer is the framework's own audio embedding for Fréchet distances, and its softmax
posteriors give the KL / accuracy metrics of ``evaluate.py``. Plain ``nn.Module``: no Lightning, no Hydra.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    # strided from the first layer: a full-resolution first conv costs ~100x more on CPU for no accuracy here
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.GELU())


class AudioClassifier(nn.Module):
    """Standardised log-mel [B, n_mels, F] -> embedding [B, embed_dim] -> one logit vector per head."""

    def __init__(self, *, heads: dict[str, int], width: int = 16, embed_dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        if not heads or min(heads.values()) < 1:
            raise ValueError(f"need at least one head with >= 1 class, got {heads}")
        self.trunk = nn.Sequential(_block(1, width), _block(width, 2 * width), _block(2 * width, 4 * width),
                                   _block(4 * width, 4 * width))
        # mean and max over time: max keeps short impacts visible in a mostly silent clip
        self.project = nn.Sequential(nn.Linear(8 * width, embed_dim), nn.GELU())
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(embed_dim, n) for name, n in heads.items()})
        self.embed_dim = embed_dim

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """The penultimate activations (the FAD embedding)."""
        x = self.trunk(mel.unsqueeze(1)).mean(dim=2)  # [B, C, F'] after pooling over mel bins
        return self.project(torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1))

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.dropout(self.embed(mel))
        return {name: head(z) for name, head in self.heads.items()}
