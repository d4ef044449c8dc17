"""The audio-classifier stage (``python train.py experiment=audio_classifier``).

A reference model for evaluation, trained on ground-truth audio only: its posteriors score generated
audio (KL, accuracy) and its penultimate layer is the framework's FAD embedder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from v2a.audio.mel import LogMel
from v2a.evaluation.labels import soft_targets
from v2a.models.audio_classifier import AudioClassifier
from v2a.training.stage import StageModule
from v2a.utils.export_files import cpu_weights, write_export

log = logging.getLogger(__name__)


class AudioClassifierModule(StageModule):
    """Soft-label cross-entropy per head (a clip with two materials targets both, half each)."""

    def __init__(self, *, features: LogMel, vocabularies: dict[str, list[str]],
                 optimizer: Callable[..., torch.optim.Optimizer], scheduler: Callable[..., Any] | None = None,
                 width: int = 16, embed_dim: int = 128, dropout: float = 0.1, gain_db: float = 6.0) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.features = features
        self.vocabularies = {k: list(v) for k, v in vocabularies.items()}
        self.classifier = AudioClassifier(heads={k: len(v) for k, v in self.vocabularies.items()}, width=width,
                                          embed_dim=embed_dim, dropout=dropout)
        self.gain_db = gain_db

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

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.classifier.parameters())

    def export_to(self, out_dir: str | Path) -> Path:
        """``out_dir/model.safetensors`` (classifier weights) + ``config.json`` (the resolved run config)."""
        if self.run_config is None:
            raise ValueError("the classifier has no run_config to export (train it through train.py)")
        weights = cpu_weights(self.classifier)
        if self._trainer is not None and not self.trainer.is_global_zero:
            return Path(out_dir)
        return write_export(out_dir, weights, self.run_config, format="v2a-audio-classifier")
