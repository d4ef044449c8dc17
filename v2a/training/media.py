"""Audio, spectrograms and videos into the run's loggers (wandb, TensorBoard; CSV runs keep the files).

One place decides how a clip looks in each logger, for the demo samples during training
(:class:`v2a.training.callbacks.DemoSamples`) and the evaluations inside a run
(:mod:`v2a.training.evaluate_callback`):

- wandb: ``PREFIX/generated`` and ``PREFIX/ground_truth`` (``WandbLogger.log_audio``), ``PREFIX/spectrogram``
  (``log_image``), ``PREFIX/video`` (``log_video``: the muxed mp4), each a list captioned with the clip keys;
- TensorBoard: ``PREFIX/KEY/generated`` and ``PREFIX/KEY/ground_truth`` (``add_audio``), ``PREFIX/KEY/spectrogram``
  (``add_image`` of the spectrogram png). TensorBoard's video panel needs moviepy: the mp4 stays a file;
- CSV (and any other logger): the files under the run folder are the record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass
class MediaClip:
    """One clip as the loggers show it: generated audio, ground truth, spectrogram image, muxed video."""

    key: str
    audio: np.ndarray
    sample_rate: int
    reference: np.ndarray | None = None
    image: Path | None = None
    video: Path | None = None


def write_clip_video(frames: torch.Tensor, audio: np.ndarray, sample_rate: int, fps: int, out_path: Path) -> Path | None:
    """Frames uint8 [T, C, H, W] + audio -> a muxed mp4 at ``out_path`` (None, with a warning, if it fails)."""
    from v2a.media import encode_mp4, mux_audio

    out_path.parent.mkdir(parents=True, exist_ok=True)
    silent = out_path.with_name(f".{out_path.stem}.silent.mp4")
    try:
        silent.write_bytes(encode_mp4(frames.permute(0, 2, 3, 1).cpu().numpy(), fps))
        return mux_audio(silent, np.asarray(audio, dtype=np.float32), sample_rate, out_path)
    except Exception as error:  # a sample video is a convenience: never stop training on it
        log.warning("sample video %s not written: %s", out_path, error)
        return None
    finally:
        silent.unlink(missing_ok=True)


def _png(path: Path) -> np.ndarray:
    import matplotlib.image

    return np.ascontiguousarray(matplotlib.image.imread(str(path))[..., :3])


def log_media(loggers: Sequence[object], step: int, prefix: str, clips: Sequence[MediaClip]) -> None:
    """Log ``clips`` at ``step`` to every logger that shows media; call on rank 0."""
    if not clips:
        return
    from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger

    for logger in loggers:
        try:
            if isinstance(logger, WandbLogger):
                _to_wandb(logger, step, prefix, clips)
            elif isinstance(logger, TensorBoardLogger):
                _to_tensorboard(logger.experiment, step, prefix, clips)
        except Exception as error:  # media are a convenience: never stop training on them
            log.warning("media not logged to %s: %s", type(logger).__name__, error)


def _to_wandb(logger, step: int, prefix: str, clips: Sequence[MediaClip]) -> None:
    keys = [c.key for c in clips]
    rates = [c.sample_rate for c in clips]
    logger.log_audio(f"{prefix}/generated", [c.audio for c in clips], step=step, sample_rate=rates, caption=keys)
    with_reference = [c for c in clips if c.reference is not None]
    if with_reference:
        logger.log_audio(f"{prefix}/ground_truth", [c.reference for c in with_reference], step=step,
                         sample_rate=[c.sample_rate for c in with_reference], caption=[c.key for c in with_reference])
    with_image = [c for c in clips if c.image is not None and c.image.exists()]
    if with_image:
        logger.log_image(f"{prefix}/spectrogram", [str(c.image) for c in with_image], step=step,
                         caption=[c.key for c in with_image])
    with_video = [c for c in clips if c.video is not None and c.video.exists()]
    if with_video:
        logger.log_video(f"{prefix}/video", [str(c.video) for c in with_video], step=step,
                         caption=[c.key for c in with_video])


def _to_tensorboard(writer, step: int, prefix: str, clips: Sequence[MediaClip]) -> None:
    for clip in clips:
        tag = f"{prefix}/{clip.key}"
        writer.add_audio(f"{tag}/generated", torch.from_numpy(np.clip(clip.audio, -1, 1))[None], step,
                         sample_rate=clip.sample_rate)
        if clip.reference is not None:
            writer.add_audio(f"{tag}/ground_truth", torch.from_numpy(np.clip(clip.reference, -1, 1))[None], step,
                             sample_rate=clip.sample_rate)
        if clip.image is not None and clip.image.exists():
            writer.add_image(f"{tag}/spectrogram", _png(clip.image), step, dataformats="HWC")
    writer.flush()


def log_scalars(loggers: Sequence[object], step: int, metrics: dict[str, object]) -> None:
    """Finite numbers of ``metrics`` to every logger (rank 0)."""
    values = {k: float(v) for k, v in metrics.items()
              if isinstance(v, int | float | np.floating | np.integer) and not isinstance(v, bool) and np.isfinite(v)}
    if not values:
        return
    for logger in loggers:
        logger.log_metrics(values, step=step)
