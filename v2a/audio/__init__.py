"""Audio features shared by training, evaluation, vocoders and generation."""

from v2a.audio.masks import mel_frame_mask
from v2a.audio.mel import LogMel

__all__ = ["LogMel", "mel_frame_mask"]
