"""Geometry and tunables of the watermark, shared by the embedder and the detector."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WatermarkParams:
    """All numbers that embedder and detector must agree on, plus the detector's search range.

    The mark lives in an STFT at ``analysis_sr`` whatever the input rate, so 8 kHz telephone
    audio and 48 kHz masters carry the same pattern. The band spans 250-7400 Hz: more cells
    mean a stronger score at the same SNR, and the part below 4 kHz alone still carries
    enough for audio that was low-passed or sent through 8 kHz.
    """

    analysis_sr: int = 16_000
    n_fft: int = 512            # 32 ms window, 31.25 Hz bins
    hop: int = 256              # 16 ms frames
    f_lo: float = 250.0         # band carrying the mark (Hz)
    f_hi: float = 7400.0
    tile_bins: int = 4          # one pattern cell = tile_bins x tile_frames STFT cells
    tile_frames: int = 3
    period_tiles: int = 16      # pattern repeats every period_tiles * tile_frames frames
    # embedding strength
    snr_db: float = 30.1        # target SNR of marked vs original (whole clip)
    max_alpha: float = 0.1      # cap on the base relative modulation depth
    quiet_boost: float = 4.0    # cap on the extra depth given to bins quieter than their neighbourhood
    level_gamma: float = 0.5    # depth x (frame level / clip level) ** -level_gamma (0 = constant local SNR)
    level_frames: int = 15      # frame level smoothed over this many frames
    floor_db: float = 20.0      # keyed floor fills holes up to this far below the mean band power (0 = off)
    floor_share: float = 0.5    # at most this share of the mark energy goes to the floor
    # detection
    fpr: float = 1e-4           # p-value threshold for ``watermarked``
    max_speed: float = 0.2      # search speed factors 1 +- max_speed ...
    near_speed: float = 0.06    # ... those within 1 +- near_speed form a family with a lower threshold
    max_speed_step: float = 0.006
    window_s: float = 12.0      # long audio is scored in windows this long (speed drift bound)
    floor_rel: float = 1e-4     # power floor relative to mean band power (silence -> constant)

    @property
    def bin_hz(self) -> float:
        return self.analysis_sr / self.n_fft

    @property
    def band_lo(self) -> int:
        """First STFT bin of the marked band."""
        return int(math.ceil(self.f_lo / self.bin_hz))

    @property
    def n_freq_tiles(self) -> int:
        return int((self.f_hi / self.bin_hz - self.band_lo) // self.tile_bins)

    @property
    def band_hi(self) -> int:
        """One past the last STFT bin of the marked band."""
        return self.band_lo + self.n_freq_tiles * self.tile_bins

    @property
    def period_frames(self) -> int:
        return self.period_tiles * self.tile_frames

    @property
    def pattern_shape(self) -> tuple[int, int]:
        """(time tiles per period, frequency tiles)."""
        return self.period_tiles, self.n_freq_tiles
