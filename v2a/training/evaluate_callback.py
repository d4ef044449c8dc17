"""Evaluate at the end of training, so ``train.py`` returns an evaluation metric (for sweeps)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch

log = logging.getLogger(__name__)


class EvaluateAfterTraining(pl.Callback):
    """After the last step: save the final checkpoint, run :func:`v2a.evaluation.job.evaluate` on it into
    ``out_dir``, and put ``eval/<metric>`` into the trainer's metrics, which ``train.py`` returns when
    ``optimized_metric`` names it. ``options`` are any keyword arguments of ``evaluate``."""

    def __init__(self, *, out_dir: str, metric: str = "sync/onset_f1", **options) -> None:
        self.out_dir = out_dir
        self.metric = metric
        self.options = options

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        from v2a.evaluation.job import evaluate

        ckpt = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt"
        trainer.save_checkpoint(ckpt, weights_only=False)  # every rank (collective); train() rewrites it identically
        if not trainer.is_global_zero:
            return
        was_training = module.training
        metrics = evaluate(ckpt=str(ckpt), out=self.out_dir, device=str(module.device), **self.options)
        module.train(was_training)
        log.info("evaluation after training: %s = %.4f (%s/metrics.json)", self.metric, metrics[self.metric], self.out_dir)
        trainer.callback_metrics[f"eval/{self.metric}"] = torch.tensor(metrics[self.metric])
