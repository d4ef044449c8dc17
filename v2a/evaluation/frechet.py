"""Fréchet distance between two sets of embeddings (FAD when the embeddings are audio embeddings).

The maths is written once; any embedder that maps audio [B, N] to vectors [B, D] plugs in (see
:mod:`v2a.evaluation.embedders`).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def gaussian_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (unbiased) of embeddings [N, D]."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least two embeddings of shape [N, D], got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) (Dowson & Landau 1982; Heusel et al. 2017)."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():
        # singular product (fewer clips than dimensions): regularise both covariances slightly
        offset = np.eye(len(mu1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)  # numerical noise can leave a tiny imaginary part
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))
    return max(value, 0.0)


def frechet_between(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to embeddings ``a`` [N, D] and ``b`` [M, D]."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
