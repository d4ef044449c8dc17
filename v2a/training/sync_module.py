"""The sync stage: visual and audio encoders trained so that per-frame features carry timing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from v2a.audio.mel import LogMel
from v2a.sync.lags import lag_scores, shifted_windows
from v2a.sync.model import SyncModel
from v2a.training.stage import StageModule


class SyncModule(StageModule):
    """Trains ``visual_encoder`` (the V2A one) and an audio encoder on (video, audio) pairs.

    Each step cuts a visual window and a wider audio window delayed by a random, known number of frames.
    Two losses: offset classification over the lag scores (which delay makes picture and sound agree),
    and a per-frame contrastive loss (each visual frame must pick its own audio frame out of the window,
    so features are sharp in time, not just clip-level). The trained visual encoder can initialise the
    V2A model's (``model.visual_init``); the :class:`SyncModel` it holds measures the sync of any clip (DeSync).
    """

    def __init__(self, *, visual_encoder: torch.nn.Module, audio_encoder: torch.nn.Module, features: LogMel,
                 optimizer: Callable[..., torch.optim.Optimizer], scheduler: Callable[..., Any] | None = None,
                 window_frames: int = 24, max_lag: int = 5, temperature: float = 0.07,
                 contrastive_weight: float = 1.0, seed: int = 0) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler, seed=seed)
        self.model = SyncModel(visual_encoder=visual_encoder, audio_encoder=audio_encoder, features=features,
                               max_lag=max_lag)
        self.window_frames = window_frames
        self.max_lag = max_lag
        self.temperature = temperature
        self.contrastive_weight = contrastive_weight

    # --- the trained model's parts, under the names the training code uses -------------------
    @property
    def visual_encoder(self) -> torch.nn.Module:
        return self.model.visual_encoder

    @property
    def audio_encoder(self) -> torch.nn.Module:
        return self.model.audio_encoder

    @property
    def features(self) -> LogMel:
        return self.model.features

    def _losses(self, frames: torch.Tensor, mel: torch.Tensor, generator: torch.Generator,
                valid_frames: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        frames_w, mel_w, target = shifted_windows(frames, mel, window=self.window_frames, max_lag=self.max_lag,
                                                  mel_per_frame=self.model.mel_per_frame, generator=generator,
                                                  valid_frames=valid_frames)
        target = target.to(frames.device)
        visual, audio = self.model.embed(frames_w, mel_w)
        scores = lag_scores(visual, audio, self.max_lag) / self.temperature
        offset_loss = F.cross_entropy(scores, target)
        # per-frame contrastive: visual frame i against every audio frame of its own window
        sim = torch.einsum("btd,bsd->bts", F.normalize(visual, dim=-1), F.normalize(audio, dim=-1)) / self.temperature
        positions = torch.arange(visual.shape[1], device=frames.device)
        positive = positions[None, :] + target[:, None]  # audio index of each visual frame
        frame_loss = F.cross_entropy(sim.flatten(0, 1), positive.flatten())
        predicted = scores.argmax(dim=-1)
        return {"loss": offset_loss + self.contrastive_weight * frame_loss, "offset_loss": offset_loss,
                "frame_loss": frame_loss, "acc": (predicted == target).float().mean(),
                "acc_1frame": ((predicted - target).abs() <= 1).float().mean()}

    def predict_offset(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """:meth:`SyncModel.predict_offset` of the model being trained."""
        return self.model.predict_offset(frames, audio)

    # --- loops ------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self._losses(batch["frames"], self.features(batch["audio"]), self.step_generator(batch_idx),
                              valid_frames=batch["mask"].sum(dim=1) if "mask" in batch else None)
        self.check_finite(losses["loss"])
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=batch["audio"].shape[0])
        return losses["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        generator = torch.Generator().manual_seed(12345 + batch_idx)  # the same windows at every validation
        losses = self._losses(batch["frames"], self.features(batch["audio"]), generator)
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, sync_dist=True, batch_size=batch["audio"].shape[0])
