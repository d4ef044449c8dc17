"""Audio features shared by training, evaluation, vocoders and generation."""

from v2a.audio.mel import LogMel

__all__ = ["LogMel"]
