"""Callbacks: render a fixed demo set with EMA weights into the run folder and the loggers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch

from v2a.data.visual_features import visual_input
from v2a.media import write_audio
from v2a.pipeline import V2APipeline
from v2a.training.media import MediaClip, log_media, write_clip_video
from v2a.training.preemption import was_preempted
from v2a.utils.plots import plot_mels

log = logging.getLogger(__name__)


class DemoSamples(pl.Callback):
    """Every ``every_n_steps`` (0: never) and at the end of training, generate audio for the first
    ``num_clips`` validation clips (fixed seed) with the EMA weights.

    Rank 0 writes ``out_dir/step_N/KEY.wav``, ``KEY.png`` (reference and generated spectrograms, true events
    dashed) and, with ``video``, ``KEY.mp4`` (the clip's frames muxed with the generated audio), plus the
    ground truth once in ``out_dir/ground_truth/KEY.wav``; with ``log_media`` the same clips go to the run's
    loggers (:func:`v2a.training.media.log_media`: wandb and TensorBoard) under ``samples/``.
    """

    def __init__(self, *, out_dir: str, num_clips: int = 4, every_n_steps: int = 0, seed: int = 0,
                 video: bool = True, log_media: bool = True) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0 (0: only at the end), got {every_n_steps}")
        self.out_dir = Path(out_dir)
        self.num_clips = num_clips
        self.every_n_steps = every_n_steps
        self.seed = seed
        self.video = video
        self.log_media = log_media
        self._batch: dict | None = None
        self._rendered_step: int | None = None

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
        """Generate the demo clips with ``pipeline``; rank 0 writes the files under ``out_dir/step_N`` and
        logs them to the trainer's loggers."""
        if self.num_clips < 1:
            return None
        # Every rank samples (under FSDP a forward pass is collective); only rank 0 writes files.
        batch = self._demo_batch(trainer)
        if batch is None:
            return None
        self._rendered_step = trainer.global_step
        step_dir = self.out_dir / f"step_{trainer.global_step:07d}"
        frames = visual_input(batch)[: self.num_clips]   # frames, or cached backbone features (no video to write)
        generator = torch.Generator().manual_seed(self.seed)
        # a text model is sampled as it is meant to be used: with each clip's caption and transcript
        mel = pipeline.generate_mel(frames, generator=generator, **pipeline.clip_texts(batch, self.num_clips))
        audio = pipeline.vocoder(mel).float().cpu().numpy()
        truth = batch["audio"][: self.num_clips]
        reference = pipeline.features(truth.to(pipeline.device)).float().cpu().numpy()
        if not trainer.is_global_zero:
            return None
        spec = pipeline.spec
        clips = []
        for i, key in enumerate(batch["key"][: self.num_clips]):
            write_audio(step_dir / f"{key}.wav", audio[i], spec.sample_rate)
            truth_wav = self.out_dir / "ground_truth" / f"{key}.wav"
            if not truth_wav.exists():
                write_audio(truth_wav, truth[i].numpy(), spec.sample_rate)
            events = [e["time"] for e in batch["meta"][i].get("events", [])]
            image = plot_mels(step_dir / f"{key}.png", [("reference", reference[i]), ("generated", mel[i].float().cpu().numpy())],
                              spec.mel_rate, events)
            video = (write_clip_video(batch["frames"][i], audio[i], spec.sample_rate, spec.fps, step_dir / f"{key}.mp4")
                     if self.video and "frames" in batch else None)
            clips.append(MediaClip(key=key, audio=audio[i], sample_rate=spec.sample_rate, reference=truth[i].numpy(),
                                   image=image, video=video))
        if self.log_media:
            log_media(getattr(trainer, "loggers", []), trainer.global_step, "samples", clips)
        log.info("demo samples written to %s", step_dir)
        return step_dir

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0 and step != self._rendered_step:
            self.render(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if was_preempted(trainer):  # the job is being stopped: leave its time to the resume checkpoint
            return
        if trainer.global_step != self._rendered_step:
            self.render(trainer, pl_module)
