"""Evaluation inside a training run: at the end (so ``train.py`` returns an evaluation metric, for sweeps)
and, optionally, every N steps on a small fixed subset. Both log ``eval/...`` metrics, spectrograms, audio
and sample videos into the run's loggers."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import soundfile
import torch

from v2a.training.media import MediaClip, log_media, log_scalars
from v2a.training.preemption import was_preempted

log = logging.getLogger(__name__)


def log_evaluation(trainer: pl.Trainer, out_dir: str | Path, metrics: dict, prefix: str = "eval") -> None:
    """``metrics`` as ``prefix/<metric>`` and the report's plots, generated audio and videos into the
    trainer's loggers at the current step (rank 0)."""
    out_dir = Path(out_dir)
    loggers = getattr(trainer, "loggers", [])
    log_scalars(loggers, trainer.global_step, {f"{prefix}/{k}": v for k, v in metrics.items()})
    report = out_dir / "metrics.json"
    keys = json.loads(report.read_text())["run"].get("plots", []) if report.exists() else []
    clips = []
    for key in keys:
        wav = out_dir / "generations" / "generated" / f"{key}.wav"
        if not wav.exists():
            continue
        audio, rate = soundfile.read(wav, dtype="float32")   # as the evaluation's GenerationStore wrote it
        clips.append(MediaClip(key=key, audio=np.asarray(audio, dtype=np.float32).reshape(-1), sample_rate=int(rate),
                               image=out_dir / "plots" / f"{key}.png", video=out_dir / "samples" / f"{key}.mp4"))
    log_media(loggers, trainer.global_step, prefix, clips)


class EvaluateAfterTraining(pl.Callback):
    """After the last step: save the final checkpoint, run :func:`v2a.evaluation.job.evaluate` on it into
    ``out_dir``, log ``eval/<metric>`` and the report's media into the run's loggers, and put
    ``eval/<metric>`` into the trainer's metrics, which ``train.py`` returns when ``optimized_metric`` names
    it. ``options`` are any keyword arguments of ``evaluate``. Skipped when the run was preempted."""

    def __init__(self, *, out_dir: str, metric: str = "sync/onset_f1", **options) -> None:
        self.out_dir = out_dir
        self.metric = metric
        self.options = options

    def _evaluate(self, module: pl.LightningModule, ckpt: str, out_dir: str) -> dict:
        from v2a.evaluation.job import evaluate

        was_training = module.training
        try:
            return evaluate(ckpt=ckpt, out=out_dir, device=str(module.device), **self.options)
        finally:
            module.train(was_training)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if was_preempted(trainer):
            return
        ckpt = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt"
        trainer.save_checkpoint(ckpt, weights_only=False)  # every rank (collective); train() rewrites it identically
        if not trainer.is_global_zero:
            return
        metrics = self._evaluate(module, str(ckpt), self.out_dir)
        log.info("evaluation after training: %s = %.4f (%s/metrics.json)", self.metric, metrics[self.metric], self.out_dir)
        log_evaluation(trainer, self.out_dir, metrics)
        trainer.callback_metrics[f"eval/{self.metric}"] = torch.tensor(metrics[self.metric])


class PeriodicEvaluation(EvaluateAfterTraining):
    """Every ``every_n_steps`` (0: never), evaluate the current EMA weights on the first ``max_clips`` clips
    (set in ``options``; a fixed subset) into ``out_dir/step_N`` and log ``eval/...`` into the run.

    The model is evaluated from an inference export written to a temporary folder (EMA weights + config);
    the ground-truth references are cached (``cache_dir``), so only the generations cost time.
    """

    def __init__(self, *, out_dir: str, every_n_steps: int = 0, metric: str = "sync/onset_f1", **options) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0 (0: off), got {every_n_steps}")
        super().__init__(out_dir=out_dir, metric=metric, **options)
        self.every_n_steps = every_n_steps
        self._evaluated_step: int | None = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not self.every_n_steps or step == 0 or step % self.every_n_steps or step == self._evaluated_step:
            return
        if not hasattr(module, "export_to"):
            return
        self._evaluated_step = step
        with tempfile.TemporaryDirectory(prefix="v2a_eval_") as folder:
            module.export_to(Path(folder) / "export")   # every rank (FSDP gathers); rank 0 writes
            if trainer.is_global_zero:
                out_dir = str(Path(self.out_dir) / f"step_{step:07d}")
                try:
                    metrics = self._evaluate(module, str(Path(folder) / "export"), out_dir)
                except Exception as error:  # a failed look at the model must not end a days-long run
                    log.warning("periodic evaluation at step %d failed: %s", step, error)
                else:
                    log.info("periodic evaluation at step %d: %s = %.4f", step, self.metric,
                             metrics.get(self.metric, float("nan")))
                    log_evaluation(trainer, out_dir, metrics)
            trainer.strategy.barrier("periodic_eval")

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        pass   # the end-of-training evaluation is EvaluateAfterTraining's (sweep/eval_after_train)
