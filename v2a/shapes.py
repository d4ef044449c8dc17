"""Sequence lengths derived in one place.

Every module that needs a token count, a sample count or a frame count asks a :class:`ClipSpec`;
YAML only states the primary quantities (duration, rates, hop, patch size) and never repeats a
number that can be computed from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The conditions a V2A model can have, in the order the network reads them.
MODALITIES = ("video", "prompt", "transcript")

# Which conditions each row keeps (True = kept): one bool [B] for all of them, or one per modality
# ("video", "prompt", "transcript"). Drawn by the objective (CFG dropout), read by the network.
Keep = torch.Tensor | dict[str, torch.Tensor]


def frames_to_tokens(per_frame: torch.Tensor, tokens_per_frame: int, n_tokens: int) -> torch.Tensor:
    """[B, T_v, ...] one value per video frame -> [B, n_tokens, ...]: each frame's value held over the audio tokens it
    covers, the last frame's past the end (a trailing partial frame)."""
    aligned = per_frame.repeat_interleave(tokens_per_frame, dim=1)
    if aligned.shape[1] < n_tokens:
        tail = aligned[:, -1:].expand(-1, n_tokens - aligned.shape[1], *aligned.shape[2:])
        aligned = torch.cat([aligned, tail], dim=1)
    return aligned[:, :n_tokens]


@dataclass(frozen=True)
class ClipSpec:
    """The time grid of one training clip: video frames, audio samples, mel frames and tokens.

    The audio token rate must be an integer multiple of the video frame rate so that visual tokens
    can be upsampled by repetition and *added* to the audio tokens in time alignment.
    """

    duration: float = 2.0
    fps: int = 25
    sample_rate: int = 16000
    hop_length: int = 160
    n_fft: int = 1024
    n_mels: int = 80
    mel_frames_per_token: int = 2
    image_size: int = 32

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.fps <= 0 or self.sample_rate <= 0:
            raise ValueError(f"duration, fps and sample_rate must be positive, got {self}")
        if self.sample_rate % self.hop_length:
            raise ValueError(f"sample_rate {self.sample_rate} is not a multiple of hop_length {self.hop_length}")
        if self.mel_rate % self.mel_frames_per_token:
            raise ValueError(f"mel rate {self.mel_rate} is not a multiple of mel_frames_per_token")
        if self.token_rate % self.fps:
            raise ValueError(
                f"audio token rate {self.token_rate}/s must be an integer multiple of the video fps {self.fps}"
            )
        if abs(self.duration * self.fps - round(self.duration * self.fps)) > 1e-6:
            raise ValueError(f"duration {self.duration}s does not hold a whole number of frames at {self.fps} fps")

    @property
    def mel_rate(self) -> int:
        """Mel frames per second."""
        return self.sample_rate // self.hop_length

    @property
    def token_rate(self) -> int:
        """Audio tokens per second."""
        return self.mel_rate // self.mel_frames_per_token

    @property
    def tokens_per_video_frame(self) -> int:
        """How many audio tokens cover one video frame (the visual upsampling factor)."""
        return self.token_rate // self.fps

    @property
    def mel_frames_per_video_frame(self) -> int:
        """How many mel frames cover one video frame (mel rate / fps; 4 at 100 mel frames/s and 25 fps)."""
        return self.tokens_per_video_frame * self.mel_frames_per_token

    @property
    def n_video_frames(self) -> int:
        return round(self.duration * self.fps)

    @property
    def n_audio_tokens(self) -> int:
        return self.n_video_frames * self.tokens_per_video_frame

    @property
    def n_mel_frames(self) -> int:
        return self.n_audio_tokens * self.mel_frames_per_token

    @property
    def n_samples(self) -> int:
        return self.n_mel_frames * self.hop_length

    @property
    def token_dim(self) -> int:
        """Features in one audio token (mel bins times frames per token)."""
        return self.n_mels * self.mel_frames_per_token

    def with_duration(self, duration: float) -> ClipSpec:
        """The same grid for another clip length (used by windowed generation)."""
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        fields["duration"] = duration
        return ClipSpec(**fields)
