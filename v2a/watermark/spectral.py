"""STFT helpers at the watermark's analysis rate (torch for speed, numpy at the edges)."""

from __future__ import annotations

import numpy as np
import torch

from v2a.watermark.params import WatermarkParams


def _window(p: WatermarkParams) -> torch.Tensor:
    return torch.hann_window(p.n_fft, dtype=torch.float32)


def stft(x: np.ndarray, p: WatermarkParams) -> np.ndarray:
    """Complex STFT ``[..., frames, bins]`` of ``x [..., samples]`` (centred frames)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    lead = t.shape[:-1]
    spec = torch.stft(t.reshape(-1, t.shape[-1]), p.n_fft, p.hop, window=_window(p), center=True,
                      return_complex=True)
    return spec.transpose(-1, -2).reshape(*lead, spec.shape[-1], spec.shape[-2]).numpy()


def istft(spec: np.ndarray, length: int, p: WatermarkParams) -> np.ndarray:
    """Inverse of ``stft`` for ``spec [..., frames, bins]`` back to ``[..., length]``."""
    s = torch.from_numpy(np.ascontiguousarray(spec))
    lead = s.shape[:-2]
    s = s.reshape(-1, *s.shape[-2:]).transpose(-1, -2)
    y = torch.istft(s, p.n_fft, p.hop, window=_window(p), center=True, length=length)
    return y.reshape(*lead, length).numpy()


def frame_phase_tiles(n_frames: int, p: WatermarkParams) -> np.ndarray:
    """Time-tile index (0..period_tiles-1) of each embedding frame: the pattern's clock."""
    return (np.arange(n_frames) % p.period_frames) // p.tile_frames


def pattern_map(pattern: np.ndarray, n_frames: int, p: WatermarkParams) -> np.ndarray:
    """Expand the ``[time tiles, freq tiles]`` pattern to ``[frames, band bins]``."""
    rows = pattern[frame_phase_tiles(n_frames, p)]           # [frames, freq tiles]
    return np.repeat(rows, p.tile_bins, axis=1)              # [frames, band bins]
