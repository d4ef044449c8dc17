"""Timing a transcript from the video: the trained lip-driven aligner (experiment=aligner_tiny) finds the frames
where the face speaks, and the transcript's phonemes are spread over them by their typical durations."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from v2a.checkpoints.loading import CheckpointError
from v2a.models.lip_activity import SpeechActivityNet
from v2a.text.phoneme_timing import DurationModel, PhonemeSpan
from v2a.text.phonemes import Phonemizer
from v2a.utils.export_files import read_export

log = logging.getLogger(__name__)


def speech_segments(active: np.ndarray, fps: float, *, min_gap: int = 3, min_run: int = 2) -> list[tuple[float, float]]:
    """(start s, end s) of the runs of active frames, after closing gaps shorter than ``min_gap`` frames and
    dropping runs shorter than ``min_run`` frames."""
    active = np.asarray(active, dtype=bool).copy()
    runs = _runs(~active)
    for start, end in runs:  # close short silences inside speech
        if start > 0 and end < len(active) and end - start < min_gap:
            active[start:end] = True
    return [(start / fps, end / fps) for start, end in _runs(active) if end - start >= min_run]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist(), strict=True))


class LipAligner:
    """Places a transcript's phonemes on the frames where the mouth moves."""

    def __init__(self, net: SpeechActivityNet, durations: DurationModel, fps: float, *, image_size: int | None = None,
                 phonemizer: Phonemizer | None = None, threshold: float = 0.5) -> None:
        self.net = net.eval()
        self.image_size = image_size
        self.durations = durations
        self.fps = float(fps)
        self.phonemizer = phonemizer or Phonemizer()
        self.threshold = threshold

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str | torch.device = "cpu") -> LipAligner:
        """The aligner of an export folder written by ``experiment=aligner_tiny`` (``RUN/export``)."""
        try:
            config, weights = read_export(path, what="lip-aligner export",
                                          hint="; train one with: python train.py experiment=aligner_tiny")
        except FileNotFoundError as error:
            raise CheckpointError(str(error)) from None
        if config.get("format") != "v2a-lip-aligner":
            raise CheckpointError(f"{path} is not a lip-aligner export (format {config.get('format')!r})")
        model = OmegaConf.create(config["model"])
        net = SpeechActivityNet(visual_encoder=instantiate(model.visual_encoder), hidden=model.get("hidden", 64))
        net.load_state_dict(weights)
        durations = DurationModel(config["durations"]["durations"], default=config["durations"]["default"])
        return cls(net.to(device), durations, config["fps"], image_size=config.get("image_size"))

    @torch.no_grad()
    def speaking(self, frames: torch.Tensor) -> np.ndarray:
        """Per-frame probability that the face speaks, frames [T, 3, H, W] uint8 at the aligner's fps."""
        device = next(self.net.parameters()).device
        frames = frames.to(device)
        if self.image_size and frames.shape[-1] != self.image_size:  # the aligner's own frame size
            resized = F.interpolate(frames.float(), size=(self.image_size, self.image_size), mode="area")
            frames = resized.round().clamp(0, 255).to(torch.uint8)
        return torch.sigmoid(self.net(frames[None])[0]).cpu().numpy()

    def timeline(self, frames: torch.Tensor, transcript: str) -> list[PhonemeSpan]:
        """The transcript's phonemes placed on the speaking frames of ``frames`` (seconds from frame 0)."""
        phonemes = self.phonemizer(transcript)
        if not phonemes:
            return []
        segments = speech_segments(self.speaking(frames) > self.threshold, self.fps)
        if not segments:
            log.warning("the aligner saw no speaking face: the transcript is spread over the whole clip")
            segments = [(0.0, frames.shape[0] / self.fps)]
        return self.durations.fill_segments(phonemes, segments)
