"""Timing a transcript from the video: the trained lip-driven aligner (experiment=aligner_tiny) reads, per frame,
whether the face speaks and how far its mouth is open, and the transcript's phonemes are placed on those frames —
by forced alignment over the whole clip (:mod:`v2a.text.forced_alignment`) or, for exports that name no
placement, dealt to the speech segments by their typical durations."""

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
from v2a.text.forced_alignment import AlignmentCosts, align_on_frames
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

    With ``placement`` (the costs of a forced alignment, for a network that reads the mouth's opening) the whole
    transcript is placed in one Viterbi search on the speaking probability and the opening. Without it, speech
    segments are the runs of frames the network calls speaking; the transcript's words are dealt to them, and
    inside a segment each word starts where the mouth closes between words when the network reads the mouth's
    opening (``stiffness`` keeps words near their typical durations), else at its typical share.
    """

    def __init__(self, net: SpeechActivityNet, durations: DurationModel, fps: float, *, image_size: int | None = None,
                 phonemizer: Phonemizer | None = None, threshold: float = 0.5, stiffness: float = 3.0,
                 placement: AlignmentCosts | None = None) -> None:
        self.net = net.eval()
        self.image_size = image_size
        self.durations = durations
        self.fps = float(fps)
        self.phonemizer = phonemizer or Phonemizer()
        self.threshold = threshold
        self.stiffness = stiffness
        self.placement = placement

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
        placement = instantiate(model.placement) if model.get("placement") and net.opening_head is not None else None
        return cls(net.to(device), durations, config["fps"], image_size=config.get("image_size"), placement=placement)

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
        """:meth:`timeline` from the network's per-frame outputs (settings other than the aligner's may be given for
        the placement by segments)."""
        if self.placement is not None and opening is not None:
            return align_on_frames(phonemes, speaking, opening, self.fps, self.durations, self.placement)
        segments = speech_segments(speaking > (self.threshold if threshold is None else threshold), self.fps)
        if not segments:
            log.warning("the aligner saw no speaking face: the transcript is spread over the whole clip")
            segments = [(0.0, n_frames / self.fps)]
        return self.durations.fill_segments(phonemes, segments, opening=opening, fps=self.fps,
                                            stiffness=self.stiffness if stiffness is None else stiffness)


def placement_from_text(text: str) -> AlignmentCosts | None:
    """A placement named on a command line: ``segments`` (None: speech segments, then typical shares or the mouth),
    ``forced`` (the forced alignment at its default costs) or ``forced:mouth=4,speaking=1`` (fields of
    :class:`AlignmentCosts`)."""
    method, _, fields = text.partition(":")
    if method == "segments" and not fields:
        return None
    if method != "forced":
        raise ValueError(f"placement must be 'segments' or 'forced[:field=value,...]', got {text!r}")
    values: dict[str, float] = {}
    for item in filter(None, fields.split(",")):
        key, _, value = item.partition("=")
        if key not in AlignmentCosts.__dataclass_fields__ or not value:
            raise ValueError(f"placement {text!r}: {item!r} is not field=value of {sorted(AlignmentCosts.__dataclass_fields__)}")
        values[key] = int(value) if key == "per_frame" else float(value)
    return AlignmentCosts(**values)
