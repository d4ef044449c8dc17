"""Detection: fold the log-spectrogram on the pattern period, correlate, search tempo, pitch and shift.

For each candidate pair of factors ``(tempo, pitch)`` the log-magnitude band is (1) folded on the
pattern period with the frame clock scaled by ``tempo``, so every repetition of the short pattern adds
up wherever a crop starts, and (2) read at frequencies ``f * pitch``. The pairs lie on three lines:
speed changes by resampling scale both together, a player's or editor's speed control scales tempo
only, a pitch shift pitch only (``scale_hypotheses``). The folded map is centred (which removes
stationary tones and broadband onsets), cut into the pattern's tiles at every circular shift, and
correlated with the keyed pattern.

Why the p-value is exact-ish: for one hypothesis (tempo, pitch, shift) the score is
``c = sum_j p_j T_j`` with tile sums ``T_j`` computed from the audio alone and key bits
``p_j``. Without this key's mark the bits are independent fair +-1 given the audio, so ``c``
is a Rademacher sum with known variance ``V = sum_j T_j^2``; ``z = c / sqrt(V)`` is ~N(0,1)
for any audio (see ``stats``).

The detector scores two views of the audio (``detector_views``): the high-passed log band,
inverse-variance weighted, and the power relative to its local mean. Both are computed from the
audio alone, so each gives a valid p-value; the smallest, times two, is the result.
"""

from __future__ import annotations

import numpy as np

from v2a.watermark import spectral
from v2a.watermark.params import WatermarkParams
from v2a.watermark.smoothing import box_mean, box_mean1d

# Detector-only constants (the embedder does not need them). Chosen on procedural clips:
HP_FRAMES = 15         # per-bin temporal high-pass (removes steady partials within a note)
HP_BINS = 25           # per-frame spectral high-pass (removes onsets and the spectral envelope)
LOCAL_FLOOR = 0.1      # floor at 10 % of the local mean power: compresses wild valley levels
LOCAL_SIZE = (3, 9)
NF_K = 3.0             # floor at 3x each bin's 10th-percentile power over time: cells that only
NF_PCT = 10            # hold stationary background noise (e.g. added hiss) carry no mark
CLIP = 2.0             # clip high-passed cells at CLIP x their median magnitude
IVW_SIZE = (9, 5)      # neighbourhood (frames, bins) of the local variance used to weigh cells
IVW_EPS = 0.05         # keeps the weight of near-constant cells (silence) bounded
RATIO_SIZE = (9, 9)    # neighbourhood of the local mean power in the ratio view
RATIO_CLIP = 2.0       # clip the ratio view's cells at +-RATIO_CLIP


def _band_power(x16: np.ndarray, p: WatermarkParams) -> tuple[np.ndarray, float]:
    """Power ``[frames, bins]`` for bins 0..band_hi*(1+max_speed)+1 and the mean power of the band."""
    n_bins = min(p.n_fft // 2 + 1, int(np.ceil(p.band_hi * (1 + p.max_speed))) + 2)
    power = np.abs(spectral.stft(x16, p)[:, :n_bins]) ** 2
    band_mean = float(power[:, p.band_lo: p.band_hi].mean()) if power.size else 0.0
    return power, band_mean


def log_band_spectrogram(x16: np.ndarray, p: WatermarkParams) -> np.ndarray:
    """High-passed, clipped log power ``[frames, bins]`` for bins 0..band_hi*(1+max_speed)+1.

    The mark shifts log power by a few hundredths of a neper per cell; everything here strips
    host structure that would otherwise swamp it, and is key-independent so the p-value
    argument (see ``stats``) still holds.
    """
    power, band_mean = _band_power(x16, p)
    # A floor relative to the clip's level makes silence (and near-silence) a constant, which
    # the high-pass turns into zeros instead of amplified rounding noise; a floor relative to
    # the local level compresses deep valleys (between partials, in decays) whose log-level
    # swings wildly but carries little of the mark.
    floor = p.floor_rel * band_mean + 1e-20 + LOCAL_FLOOR * box_mean(power, LOCAL_SIZE)
    if NF_K > 0 and power.shape[0] > 0:
        floor = floor + NF_K * np.percentile(power, NF_PCT, axis=0, keepdims=True)
    logp = np.log(power + floor)
    hp = logp - box_mean1d(logp, HP_FRAMES, axis=0)
    hp = hp - box_mean1d(hp, HP_BINS, axis=1)
    # Clip outliers (onsets, note changes, edges of silence): they dominate the variance of
    # the score while carrying none of the mark.
    active = np.abs(hp) > 1e-6
    scale = float(np.median(np.abs(hp[active]))) if active.any() else 1.0
    return np.clip(hp, -CLIP * scale, CLIP * scale)


def inverse_variance_weighted(cells: np.ndarray) -> np.ndarray:
    """``cells`` divided by their local variance: the matched filter for a small shift in noise.

    Where another sound (added noise, a mix) fills cells the host left quiet, those cells swing
    wildly and carry no mark; dividing by the local variance lets the steady, host-dominated cells
    that still carry it decide the score. Key-independent, so the p-value argument holds.
    """
    var = box_mean(cells**2, IVW_SIZE)
    positive = var > 0
    if not positive.any():
        return cells
    var = var / float(np.median(var[positive]))
    return cells / (var + IVW_EPS)


def ratio_spectrogram(x16: np.ndarray, p: WatermarkParams) -> np.ndarray:
    """Power relative to its local mean, minus one, clipped: the second view of the detector.

    For noise-like hosts the mark is a small change of each cell's *variance*; the linear ratio
    estimates it with less spread than the log (whose per-cell spread on noise is 1.28 nepers),
    which is what short crops of noisy audio need. Same bins as ``log_band_spectrogram``.
    """
    power, band_mean = _band_power(x16, p)
    local = box_mean(power, RATIO_SIZE) + p.floor_rel * band_mean + 1e-20
    return np.clip((power - local) / local, -RATIO_CLIP, RATIO_CLIP)


def detector_views(x16: np.ndarray, p: WatermarkParams) -> list[np.ndarray]:
    """The preprocessed spectrograms the detector scores; their p-values are Bonferroni-combined.

    Each view suits different hosts and attacks (see the two functions); all are computed from the
    audio alone, so each gives a valid p-value and the smallest times the number of views is one.
    """
    return [inverse_variance_weighted(log_band_spectrogram(x16, p)), ratio_spectrogram(x16, p)]


def speed_grid(n_frames: int, p: WatermarkParams) -> np.ndarray:
    """Scale factors to try: fine enough that the residual drift over the clip is < ~1 frame."""
    step = min(p.max_speed_step, 1.5 / max(n_frames, 1))
    n = int(np.ceil(p.max_speed / step))
    return 1.0 + step * np.arange(-n, n + 1)


def scale_hypotheses(n_frames: int, p: WatermarkParams) -> tuple[np.ndarray, np.ndarray]:
    """``(tempo, pitch)`` factor pairs the detector tries, on three lines through ``(1, 1)``.

    ``(s, s)``: speed changes by resampling (tape-style: tempo and pitch together); ``(s, 1)``: tempo
    changes that keep the pitch (a video editor's or player's speed control); ``(1, s)``: pitch shifts.
    ``(1, 1)`` comes first and only once.
    """
    grid = speed_grid(n_frames, p)
    others = grid[np.abs(grid - 1.0) > 1e-12]
    ones = np.ones_like(others)
    tempo = np.concatenate([[1.0], others, others, ones])
    pitch = np.concatenate([[1.0], others, ones, others])
    return tempo, pitch


def fold(logspec: np.ndarray, tempo: float, p: WatermarkParams) -> tuple[np.ndarray, np.ndarray]:
    """Sum the frames of ``logspec [frames, bins]`` by pattern phase for one tempo factor.

    Test frame t shows original frame t * tempo, i.e. phase ``round(t * tempo) % period``. Returns the
    folded ``[period, bins]`` map and the frame count per phase ``[period, 1]``. A product with the
    one-hot phase matrix (BLAS) rather than ``np.add.at``.
    """
    n_frames = logspec.shape[0]
    phase = np.rint(np.arange(n_frames) * tempo).astype(int) % p.period_frames
    one_hot = np.zeros((p.period_frames, n_frames))
    one_hot[phase, np.arange(n_frames)] = 1.0
    return one_hot @ logspec, one_hot.sum(axis=1)[:, None]


def tile_sums(folded: np.ndarray, counts: np.ndarray, pitch: float, p: WatermarkParams) -> np.ndarray:
    """Centred, tiled map ``G[shift, freq tile]`` of a folded map for one pitch factor.

    Original bin b now sits at ``b * pitch`` (linear interpolation; folding and this act on different
    axes, so their order does not matter); bins a shift up pushed past the analysed range (or Nyquist)
    read as zero, i.e. carry no evidence either way. ``G[k, n]`` is the sum over the ``tile_frames``
    phases starting at ``k`` (circular) and the ``tile_bins`` bins of frequency tile ``n``.
    """
    n_bins = folded.shape[1]
    pos = np.arange(p.band_lo, p.band_hi) * pitch
    i0 = np.clip(np.floor(pos).astype(int), 0, n_bins - 2)
    w = (pos - i0)[None, :]
    band = (1 - w) * folded[:, i0] + w * folded[:, i0 + 1]             # [period, band bins]
    band[:, pos > n_bins - 1] = 0.0
    # Centre: per bin across phases (stationary tones), per phase across bins (onsets).
    band -= (band.sum(axis=0, keepdims=True) / max(float(counts.sum()), 1.0)) * counts
    band -= band.mean(axis=1, keepdims=True)
    per_tile = band.reshape(p.period_frames, p.n_freq_tiles, p.tile_bins).sum(axis=2)  # [phase, freq tile]
    return sum(np.roll(per_tile, -j, axis=0) for j in range(p.tile_frames))


def correlate(logspec: np.ndarray, pattern: np.ndarray,
              p: WatermarkParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z-scores ``[hypotheses, shifts]`` of the pattern against ``logspec``, with each hypothesis'
    ``(tempo, pitch)`` factors (``scale_hypotheses``)."""
    tempo, pitch = scale_hypotheses(logspec.shape[0], p)
    folds: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    boxed = np.empty((len(tempo), p.period_frames, p.n_freq_tiles))
    for h, (t, f) in enumerate(zip(tempo, pitch, strict=True)):
        if t not in folds:
            folds[t] = fold(logspec, t, p)
        boxed[h] = tile_sums(*folds[t], f, p)
    # Shift k reads tile m at phase k + tile_frames * m: a circular correlation along the phase axis.
    c = np.zeros(boxed.shape[:2])
    squares = np.einsum("hpn,hpn->hp", boxed, boxed)
    v = np.zeros_like(c)
    for m in range(p.period_tiles):
        rolled = np.roll(boxed, -p.tile_frames * m, axis=1)
        c += rolled @ pattern[m]
        v += np.roll(squares, -p.tile_frames * m, axis=1)
    z = np.where(v > 0, c / np.sqrt(np.maximum(v, 1e-30)), 0.0)
    return z, tempo, pitch


def windows(n_frames: int, p: WatermarkParams) -> list[slice]:
    """Split long audio into near-equal windows of at most ``window_s`` (speed drift bound)."""
    max_frames = int(p.window_s * p.analysis_sr / p.hop)
    count = max(1, int(np.ceil(n_frames / max_frames)))
    edges = np.linspace(0, n_frames, count + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
