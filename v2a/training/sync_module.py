"""The sync stage: visual and audio encoders trained so that per-frame features carry timing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from v2a.audio.mel import LogMel
from v2a.sync.lags import lag_scores, shifted_windows


class SyncModule(pl.LightningModule):
    """Trains ``visual_encoder`` (the V2A one) and an audio encoder on (video, audio) pairs.

    Each step cuts a visual window and a wider audio window delayed by a random, known number of frames.
    Two losses: offset classification over the lag scores (which delay makes picture and sound agree),
    and a per-frame contrastive loss (each visual frame must pick its own audio frame out of the window,
    so features are sharp in time, not just clip-level). The trained visual encoder can initialise the
    V2A model's (``model.visual_init``), and ``predict_offset`` measures the sync of any clip (DeSync).
    """

    def __init__(self, *, visual_encoder: torch.nn.Module, audio_encoder: torch.nn.Module, features: LogMel,
                 optimizer: Callable[..., torch.optim.Optimizer], scheduler: Callable[..., Any] | None = None,
                 window_frames: int = 24, max_lag: int = 5, temperature: float = 0.07,
                 contrastive_weight: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        self.visual_encoder = visual_encoder
        self.audio_encoder = audio_encoder
        self.features = features
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.window_frames = window_frames
        self.max_lag = max_lag
        self.temperature = temperature
        self.contrastive_weight = contrastive_weight
        self.seed = seed
        self.mel_per_frame = features.spec.mel_rate // features.spec.fps
        self.run_config: dict | None = None

    # --- scoring ----------------------------------------------------------------------------
    def embed(self, frames: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame visual [B, T, D] and audio [B, T', D] embeddings."""
        visual, _ = self.visual_encoder(frames)
        return visual, self.audio_encoder(mel)

    def _losses(self, frames: torch.Tensor, mel: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        frames_w, mel_w, target = shifted_windows(frames, mel, window=self.window_frames, max_lag=self.max_lag,
                                                  mel_per_frame=self.mel_per_frame, generator=generator)
        target = target.to(frames.device)
        visual, audio = self.embed(frames_w, mel_w)
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

    # --- loops ------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        seed = hash((self.seed, self.global_rank, self.global_step, batch_idx)) % (2**63)
        losses = self._losses(batch["frames"], self.features(batch["audio"]), torch.Generator().manual_seed(seed))
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"non-finite training loss {losses['loss'].item()} at step {self.global_step}")
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=batch["audio"].shape[0])
        return losses["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        generator = torch.Generator().manual_seed(12345 + batch_idx)  # the same windows at every validation
        losses = self._losses(batch["frames"], self.features(batch["audio"]), generator)
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, sync_dist=True, batch_size=batch["audio"].shape[0])

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["v2a_config"] = self.run_config
