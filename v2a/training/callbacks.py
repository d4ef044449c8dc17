"""Callbacks: render a fixed demo set with EMA weights; print where the checkpoint is."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch

from v2a.media import write_audio
from v2a.pipeline import V2APipeline
from v2a.utils.plots import plot_mels

log = logging.getLogger(__name__)


class DemoSamples(pl.Callback):
    """Every ``every_n_steps`` and at the end of training, generate audio for the first
    ``num_clips`` validation clips (fixed seed) and write wav + spectrogram png under ``out_dir``."""

    def __init__(self, *, out_dir: str, num_clips: int = 4, every_n_steps: int = 0, seed: int = 0) -> None:
        self.out_dir = Path(out_dir)
        self.num_clips = num_clips
        self.every_n_steps = every_n_steps
        self.seed = seed
        self._batch: dict | None = None

    def _demo_batch(self, trainer: pl.Trainer) -> dict | None:
        if self._batch is None:
            datamodule = trainer.datamodule
            if datamodule is None:
                return None
            self._batch = next(iter(datamodule.val_dataloader()))
        return self._batch

    def render(self, trainer: pl.Trainer, module: pl.LightningModule) -> Path | None:
        """Sample the module's EMA pipeline (in eval mode) and write the files."""
        was_training = module.training
        module.eval()
        try:
            return self.render_with(trainer, module.sampling_pipeline())
        finally:
            module.train(was_training)

    @torch.no_grad()
    def render_with(self, trainer: pl.Trainer, pipeline: V2APipeline) -> Path | None:
        """Generate the demo clips with ``pipeline``; rank 0 writes wav + png under ``out_dir/step_N``."""
        if self.num_clips < 1:
            return None
        # Every rank samples (under FSDP a forward pass is collective); only rank 0 writes files.
        batch = self._demo_batch(trainer)
        if batch is None:
            return None
        step_dir = self.out_dir / f"step_{trainer.global_step:07d}"
        frames = batch["frames"][: self.num_clips]
        generator = torch.Generator().manual_seed(self.seed)
        # a text model is sampled as it is meant to be used: with each clip's caption and transcript
        mel = pipeline.generate_mel(frames, generator=generator, **pipeline.clip_texts(batch, self.num_clips))
        audio = pipeline.vocoder(mel).cpu().numpy()
        reference = pipeline.features(batch["audio"][: self.num_clips].to(pipeline.device)).cpu().numpy()
        if not trainer.is_global_zero:
            return None
        spec = pipeline.spec
        for i, key in enumerate(batch["key"][: self.num_clips]):
            write_audio(step_dir / f"{key}.wav", audio[i], spec.sample_rate)
            events = [e["time"] for e in batch["meta"][i].get("events", [])]
            plot_mels(step_dir / f"{key}.png", [("reference", reference[i]), ("generated", mel[i].cpu().numpy())], spec.mel_rate, events)
        log.info("demo samples written to %s", step_dir)
        return step_dir

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and trainer.global_step > 0:
            self.render(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.render(trainer, pl_module)
