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
    """Places a transcript's phonemes on the frames where the mouth moves.

    Speech segments are the runs of frames the network calls speaking; the transcript's words are dealt to
    them, and inside a segment each word starts where the mouth closes between words when the network reads
    the mouth's opening (``stiffness`` keeps words near their typical durations), else at its typical share.
    """

    def __init__(self, net: SpeechActivityNet, durations: DurationModel, fps: float, *, image_size: int | None = None,
                 phonemizer: Phonemizer | None = None, threshold: float = 0.5, stiffness: float = 3.0) -> None:
        self.net = net.eval()
        self.image_size = image_size
        self.durations = durations
        self.fps = float(fps)
        self.phonemizer = phonemizer or Phonemizer()
        self.threshold = threshold
        self.stiffness = stiffness

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
        net = SpeechActivityNet(visual_encoder=instantiate(model.visual_encoder), hidden=model.get("hidden", 64),
                                opening=model.get("opening", False))
        net.load_state_dict(weights)
        durations = DurationModel.from_state(config["durations"])
        return cls(net.to(device), durations, config["fps"], image_size=config.get("image_size"))

    def predict(self, frames: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-frame probability that the face speaks, and the mouth's opening (None if the network does not read
        it), for frames [T, 3, H, W] uint8 at the aligner's fps."""
        speaking, opening = self.predict_batch(frames[None])
        return speaking[0], None if opening is None else opening[0]

    @torch.no_grad()
    def predict_batch(self, frames: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict` for a batch of clips, frames [B, T, 3, H, W] uint8, in one pass: arrays [B, T]."""
        device = next(self.net.parameters()).device
        frames = frames.to(device)
        if self.image_size and frames.shape[-1] != self.image_size:  # the aligner's own frame size
            resized = F.interpolate(frames.flatten(0, 1).float(), size=(self.image_size, self.image_size), mode="area")
            frames = resized.round().clamp(0, 255).to(torch.uint8).unflatten(0, frames.shape[:2])
        logits, opening = self.net.predict(frames)
        return torch.sigmoid(logits).cpu().numpy(), None if opening is None else opening.clamp(min=0).cpu().numpy()

    def timeline(self, frames: torch.Tensor, transcript: str) -> list[PhonemeSpan]:
        """The transcript's phonemes placed on the speaking frames of ``frames`` (seconds from frame 0)."""
        return self.timelines(frames[None], [transcript])[0]

    def timelines(self, frames: torch.Tensor, transcripts: list[str]) -> list[list[PhonemeSpan]]:
        """:meth:`timeline` for a batch of clips (frames [B, T, 3, H, W], one transcript each; the network runs once)."""
        phonemes = [self.phonemizer(text) for text in transcripts]
        rows = [row for row, clip in enumerate(phonemes) if clip]
        out: list[list[PhonemeSpan]] = [[] for _ in transcripts]
        if rows:
            speaking, opening = self.predict_batch(frames[rows])
            for i, row in enumerate(rows):
                out[row] = self.place(phonemes[row], speaking[i], None if opening is None else opening[i],
                                      frames.shape[1])
        return out

    def place(self, phonemes: list, speaking: np.ndarray, opening: np.ndarray | None, n_frames: int,
              threshold: float | None = None, stiffness: float | None = None) -> list[PhonemeSpan]:
        """:meth:`timeline` from the network's per-frame outputs (settings other than the aligner's may be given)."""
        segments = speech_segments(speaking > (self.threshold if threshold is None else threshold), self.fps)
        if not segments:
            log.warning("the aligner saw no speaking face: the transcript is spread over the whole clip")
            segments = [(0.0, n_frames / self.fps)]
        return self.durations.fill_segments(phonemes, segments, opening=opening, fps=self.fps,
                                            stiffness=self.stiffness if stiffness is None else stiffness)
