"""The audio-classifier stage (``python train.py experiment=audio_classifier``).

A reference model for evaluation, trained on ground-truth audio only: its posteriors score generated
audio (KL, accuracy) and its penultimate layer is the framework's FAD embedder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from v2a.audio.mel import LogMel
from v2a.evaluation.labels import soft_targets
from v2a.models.audio_classifier import AudioClassifier

log = logging.getLogger(__name__)


class AudioClassifierModule(pl.LightningModule):
    """Soft-label cross-entropy per head (a clip with two materials targets both, half each)."""

    def __init__(self, *, features: LogMel, vocabularies: dict[str, list[str]],
                 optimizer: Callable[..., torch.optim.Optimizer], scheduler: Callable[..., Any] | None = None,
                 width: int = 16, embed_dim: int = 128, dropout: float = 0.1, gain_db: float = 6.0) -> None:
        super().__init__()
        self.features = features
        self.vocabularies = {k: list(v) for k, v in vocabularies.items()}
        self.classifier = AudioClassifier(heads={k: len(v) for k, v in self.vocabularies.items()}, width=width,
                                          embed_dim=embed_dim, dropout=dropout)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.gain_db = gain_db
        self.run_config: dict | None = None

    def _losses(self, batch: dict, audio: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.classifier(self.features(audio))
        total, accuracies = audio.new_zeros(()), {}
        for head, vocabulary in self.vocabularies.items():
            targets, mask = soft_targets(batch["meta"], head, vocabulary)
            if not mask.any():
                continue
            targets, mask = targets.to(audio.device), mask.to(audio.device)
            log_p = F.log_softmax(logits[head][mask], dim=-1)
            total = total - (targets[mask] * log_p).sum(dim=-1).mean()
            hit = targets[mask].gather(1, log_p.argmax(dim=-1, keepdim=True)) > 0
            accuracies[head] = hit.float().mean()
        return total, accuracies

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        audio = batch["audio"]
        if self.gain_db:  # random gain: the label must not depend on loudness alone
            gain = torch.empty(audio.shape[0], 1, device=audio.device).uniform_(-self.gain_db, self.gain_db)
            audio = audio * 10 ** (gain / 20)
        loss, accuracies = self._losses(batch, audio)
        size = audio.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for head, acc in accuracies.items():
            self.log(f"train/{head}_acc", acc, batch_size=size)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, accuracies = self._losses(batch, batch["audio"])
        size = batch["audio"].shape[0]
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        for head, acc in accuracies.items():
            self.log(f"val/{head}_acc", acc, prog_bar=True, sync_dist=True, batch_size=size)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.classifier.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["v2a_config"] = self.run_config

    def export_to(self, out_dir: str | Path) -> Path:
        """``out_dir/model.safetensors`` (classifier weights) + ``config.json`` (the resolved run config)."""
        from v2a.evaluation.classifier import export_classifier

        write = self._trainer is None or self.trainer.is_global_zero
        return export_classifier(self, out_dir, write=write)
