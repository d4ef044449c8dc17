"""Embedding: a keyed +-gain pattern on the STFT magnitude of the mid band.

Each STFT cell of the band is scaled by ``1 + alpha * pattern * depth``: a multiplicative
mark, so it follows the content (no added noise in silence or between harmonics) and reads
back as an additive shift of the log-magnitude that gain changes cannot remove.
``depth`` is larger for cells quieter than their neighbourhood, which costs little energy
(the SNR budget is spent on loud cells) while the log-domain detector weighs every cell the
same, so the same SNR buys a stronger mark.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

from v2a.watermark import spectral
from v2a.watermark.audio_io import as_2d, resample
from v2a.watermark.params import WatermarkParams


def depth_map(power: np.ndarray, p: WatermarkParams) -> np.ndarray:
    """Relative modulation depth per band cell: ``sqrt(local mean power / power)``, capped.

    A depth of ``sqrt(E_local / E)`` makes the added component's magnitude follow the smoothed
    spectral envelope (like shaped additive spread spectrum) instead of each cell's own level.
    """
    local = uniform_filter(power, size=(3, 7), mode="nearest")
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.sqrt(local / np.maximum(power, 1e-30))
    return np.clip(np.nan_to_num(depth, nan=0.0, posinf=p.quiet_boost), 0.0, p.quiet_boost)


def unit_mark(audio: np.ndarray, sr: int, pattern: np.ndarray, p: WatermarkParams) -> np.ndarray:
    """The mark for ``alpha = 1``, at the input rate and shape ``[channels, samples]``.

    The gain map is computed once from the mono mixdown and applied to every channel, so a
    later downmix carries exactly the same mark.
    """
    x = resample(audio, sr, p.analysis_sr)                   # [channels, n16]
    spec = spectral.stft(x, p)                               # [channels, frames, bins]
    band = slice(p.band_lo, p.band_hi)
    mono_power = np.abs(spectral.stft(x.mean(axis=0), p)[:, band]) ** 2
    gain = np.zeros(spec.shape[-2:], dtype=np.float32)
    gain[:, band] = spectral.pattern_map(pattern, spec.shape[-2], p) * depth_map(mono_power, p)
    delta16 = spectral.istft(spec * gain, x.shape[-1], p)
    delta = resample(delta16, p.analysis_sr, sr)
    # Resampling there and back can change the length by a sample or two.
    out = np.zeros_like(audio, dtype=np.float32)
    n = min(out.shape[-1], delta.shape[-1])
    out[:, :n] = delta[:, :n]
    return out


def embed(audio: np.ndarray, sr: int, pattern: np.ndarray, p: WatermarkParams) -> np.ndarray:
    """Return ``audio`` with the mark added at ``p.snr_db`` (or ``p.max_alpha``, if weaker)."""
    arr, mono = as_2d(audio)
    mark = unit_mark(arr, sr, pattern, p)
    mark_energy = float(np.sum(mark.astype(np.float64) ** 2))
    if mark_energy <= 0.0:   # silence or nothing in band: nothing to mark
        return np.array(audio, dtype=np.float32, copy=True)
    energy = float(np.sum(arr.astype(np.float64) ** 2))
    alpha = min(p.max_alpha, np.sqrt(energy / mark_energy) * 10 ** (-p.snr_db / 20))
    out = np.clip(arr + alpha * mark, -1.0, 1.0).astype(np.float32)
    return out[0] if mono else out
