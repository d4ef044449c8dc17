"""Embedding: a keyed +-gain pattern on the STFT magnitude of the mid band, plus a keyed floor.

Each STFT cell of the band is scaled by ``1 + alpha * pattern * depth``: a multiplicative
mark, so it follows the content and reads back as an additive shift of the log-magnitude that
gain changes cannot remove. ``depth`` is larger for cells quieter than their neighbourhood and
for frames quieter than the clip (``level_gamma``): the log-domain detector weighs every cell
the same, so energy spent on quiet cells buys more score than energy spent on loud ones.

Where the audio is (nearly) silent there is nothing to modulate, so a faint noise floor
shaped like the clip's long-term spectrum is switched on in the pattern's ``+1`` tiles only
(``floor_db`` below the clip's mean band power). In loud cells it is negligible; in silence it
is the mark.
"""

from __future__ import annotations

import numpy as np

from v2a.media import as_2d, resample
from v2a.watermark import spectral
from v2a.watermark.params import WatermarkParams
from v2a.watermark.smoothing import box_mean, box_mean1d


def depth_map(power: np.ndarray, p: WatermarkParams) -> np.ndarray:
    """Relative modulation depth per band cell, capped at ``p.quiet_boost``.

    ``sqrt(local mean power / power)`` makes the added component follow the smoothed spectral
    envelope instead of each cell's own level; the frame factor ``(frame level / clip level)
    ** -level_gamma`` then moves mark energy from loud frames to quieter ones.
    """
    local = box_mean(power, (3, 7))
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.sqrt(local / np.maximum(power, 1e-30))
        if p.level_gamma > 0:
            frame = box_mean1d(local.mean(axis=1), p.level_frames)
            ref = max(float(frame.mean()), 1e-30)
            depth = depth * np.clip(frame / ref, 1e-6, None)[:, None] ** (-p.level_gamma)
    return np.clip(np.nan_to_num(depth, nan=0.0, posinf=p.quiet_boost), 0.0, p.quiet_boost)


def _floor_noise(n_frames: int, band_power: np.ndarray, pattern_rows: np.ndarray, p: WatermarkParams,
                 seed: int) -> np.ndarray:
    """Complex STFT cells of the keyed floor: shaped noise on ``+1`` tiles, zero elsewhere."""
    level = 10 ** (-p.floor_db / 10) * band_power.mean(axis=0, keepdims=True)   # long-term spectrum
    mean = float(band_power.mean())
    level = np.maximum(level, 10 ** (-p.floor_db / 10) * 1e-2 * mean)           # keep thin bins alive
    # Only fill the holes: where the host is already above the floor it carries the
    # multiplicative mark, and extra noise there would cost energy for nothing.
    local = box_mean(band_power, (3, 7))
    fill = np.maximum(level - local, 0.0)
    rng = np.random.default_rng(seed)
    phase = np.exp(2j * np.pi * rng.random((n_frames, band_power.shape[1])))
    return phase * np.sqrt(fill) * (pattern_rows > 0)


def unit_mark(audio: np.ndarray, sr: int, pattern: np.ndarray, p: WatermarkParams) -> tuple[np.ndarray, np.ndarray]:
    """The multiplicative mark for ``alpha = 1`` and the floor, each at the input rate ``[channels, samples]``.

    The gain map is computed once from the mono mixdown and applied to every channel, so a
    later downmix carries exactly the same mark.
    """
    x = resample(audio, sr, p.analysis_sr)                   # [channels, n16]
    spec = spectral.stft(x, p)                               # [channels, frames, bins]
    band = slice(p.band_lo, p.band_hi)
    mono_power = np.abs(spectral.stft(x.mean(axis=0), p)[:, band]) ** 2
    rows = spectral.pattern_map(pattern, spec.shape[-2], p)
    gain = np.zeros(spec.shape[-2:], dtype=np.float32)
    gain[:, band] = rows * depth_map(mono_power, p)
    floor = np.zeros(spec.shape[-2:], dtype=np.complex64)
    if p.floor_db > 0 and float(mono_power.mean()) > 0:
        floor[:, band] = _floor_noise(spec.shape[-2], mono_power, rows, p, seed=x.shape[-1])
    delta16 = spectral.istft(np.stack([spec * gain, np.broadcast_to(floor, spec.shape)]), x.shape[-1], p)
    out = np.zeros((2, *audio.shape), dtype=np.float32)
    for i in range(2):
        d = resample(delta16[i], p.analysis_sr, sr)
        n = min(out.shape[-1], d.shape[-1])   # resampling there and back can change the length by a sample
        out[i, :, :n] = d[:, :n]
    return out[0], out[1]


def embed(audio: np.ndarray, sr: int, pattern: np.ndarray, p: WatermarkParams) -> np.ndarray:
    """Return ``audio`` with the mark added at ``p.snr_db`` (or ``p.max_alpha``, if weaker).

    The floor takes at most ``p.floor_share`` of the mark's energy budget; the multiplicative
    part gets the rest.
    """
    arr, mono = as_2d(audio)
    mark, floor = unit_mark(arr, sr, pattern, p)
    mark_energy = float(np.sum(mark.astype(np.float64) ** 2))
    if mark_energy <= 0.0:   # silence or nothing in band: nothing to mark
        return np.array(audio, dtype=np.float32, copy=True)
    energy = float(np.sum(arr.astype(np.float64) ** 2))
    budget = energy * 10 ** (-p.snr_db / 10)
    floor_energy = float(np.sum(floor.astype(np.float64) ** 2))
    if floor_energy > p.floor_share * budget:
        floor *= np.sqrt(p.floor_share * budget / floor_energy)
        floor_energy = p.floor_share * budget
    alpha = min(p.max_alpha, np.sqrt((budget - floor_energy) / mark_energy))
    delta = alpha * mark.astype(np.float64) + floor
    # The two parts are not exactly orthogonal: rescale so the total never exceeds the budget.
    total = float(np.sum(delta**2))
    if total > budget:
        delta *= np.sqrt(budget / total)
    out = np.clip(arr + delta, -1.0, 1.0).astype(np.float32)
    return out[0] if mono else out
