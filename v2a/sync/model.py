"""The trained sync model at inference: per-frame visual and audio embeddings, and the audio-visual
offset they imply (the DeSync-style metric). Trained by ``v2a.training.sync_module.SyncModule``."""

from __future__ import annotations

import torch
from torch import nn

from v2a.audio.mel import LogMel
from v2a.sync.lags import lag_scores


class SyncModel(nn.Module):
    """Visual encoder + audio encoder + mel features; scores lags of up to ``max_lag`` video frames."""

    def __init__(self, *, visual_encoder: nn.Module, audio_encoder: nn.Module, features: LogMel, max_lag: int = 5) -> None:
        super().__init__()
        self.visual_encoder = visual_encoder
        self.audio_encoder = audio_encoder
        self.features = features
        self.max_lag = max_lag
        spec = features.spec
        self.mel_per_frame = spec.mel_frames_per_video_frame

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def embed(self, frames: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame visual [B, T, D] and audio [B, T', D] embeddings."""
        visual, _ = self.visual_encoder(frames)
        return visual, self.audio_encoder(mel)

    @torch.no_grad()
    def predict_offset(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Estimated audio delay in seconds (positive: sound late) of clips ``frames`` [B, T, ...], ``audio`` [B, S].

        Uses the visual frames max_lag..T-max_lag against the whole audio, so it measures delays up to
        ``max_lag`` frames either way; longer clips are scored on their centre.
        """
        mel = self.features(audio.to(self.device))
        total = frames.shape[1]
        mel = mel[..., : total * self.mel_per_frame]
        visual, audio_emb = self.embed(frames[:, self.max_lag: total - self.max_lag].to(self.device), mel)
        lags = lag_scores(visual, audio_emb, self.max_lag).argmax(dim=-1) - self.max_lag
        return lags.float() / self.features.spec.fps
