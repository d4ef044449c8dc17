"""Audio-visual synchronisation stage: encoders whose per-frame features carry timing, and an offset predictor."""

from v2a.sync.audio_encoder import MelFrameEncoder
from v2a.sync.lags import lag_scores, shifted_windows

__all__ = ["MelFrameEncoder", "lag_scores", "shifted_windows"]
