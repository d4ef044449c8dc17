"""The lip-driven aligner stage (experiment=aligner_tiny): learns from the frames where the face speaks, and the
typical duration of every phoneme, so a transcript can be placed on the frames where the mouth moves."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from v2a.models.lip_activity import SpeechActivityNet
from v2a.shapes import ClipSpec
from v2a.text.forced_alignment import AlignmentCosts
from v2a.text.phoneme_timing import DurationModel, recorded_spans, stress_keys
from v2a.text.phonemes import PAUSES, Phonemizer
from v2a.training.stage import Factory, StageModule
from v2a.utils.export_files import cpu_weights, write_export

FORMAT = "v2a-lip-aligner"
DURATIONS_KEY = "phoneme_durations"
# per duration key: [sum of the mouth's opening over its frames, frames, sum of its squares] (older: the first two)
OPENNESS_KEY = "phoneme_openness"
PARTS_KEY = "phoneme_opening_parts"   # per duration key: [sum of the openings, frames] of each part of the phoneme


def speaking_frames(meta: dict, spec: ClipSpec) -> torch.Tensor:
    """Bool [T]: video frames whose centre falls inside a recorded phoneme that is not a pause."""
    centres = (torch.arange(spec.n_video_frames) + 0.5) / spec.fps
    speaking = torch.zeros(spec.n_video_frames, dtype=torch.bool)
    for span in recorded_spans(meta):
        if span.symbol not in PAUSES:
            speaking |= (centres >= span.start) & (centres < span.end)
    return speaking


def recorded_opening(metas: list[dict], spec: ClipSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(opening float [B, T], known bool [B, T]): each clip's recorded per-frame mouth opening (``meta["mouth"]``,
    on the stored clip's clock, shifted by a loader crop's start); unknown where a clip records none."""
    opening = torch.zeros(len(metas), spec.n_video_frames)
    known = torch.zeros(len(metas), spec.n_video_frames, dtype=torch.bool)
    for row, meta in enumerate(metas):
        values = meta.get("mouth")
        if not values:
            continue
        first = round(float(meta.get("crop_start", 0.0) or 0.0) * spec.fps)
        part = torch.tensor(values[first : first + spec.n_video_frames], dtype=torch.float32)
        opening[row, : len(part)], known[row, : len(part)] = part, True
    return opening, known


class AlignerModule(StageModule):
    """Trains a :class:`SpeechActivityNet` on the clips' recorded speech (frame labels from the phoneme times) and
    accumulates each phoneme's mean recorded duration (the :class:`DurationModel` that fills speech segments).
    ``placement`` (the forced alignment's costs) travels with the export's config; generation reads it."""

    def __init__(self, *, visual_encoder: torch.nn.Module, spec: ClipSpec, optimizer: Factory,
                 scheduler: Factory | None = None, hidden: int = 64, opening: bool = False, mouth_weight: float = 0.0,
                 phoneme_stiffness: float = 1.0, placement: AlignmentCosts | None = None, opening_parts: int = 3,
                 seed: int = 0) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler, seed=seed)
        if opening_parts < 1:
            raise ValueError(f"model.opening_parts must be >= 1, got {opening_parts}")
        if placement is not None and not opening:
            raise ValueError("model.placement (forced alignment) reads the mouth's opening: set model.opening=true")
        self.mouth_weight, self.phoneme_stiffness = mouth_weight, phoneme_stiffness  # stored with the durations
        self.net = SpeechActivityNet(visual_encoder=visual_encoder, hidden=hidden, opening=opening)
        self.spec = spec
        self.phonemizer = Phonemizer()  # the transcript's stress marks: stressed vowels get their own durations
        self._seen: dict[str, list[float]] = defaultdict(list)
        self._open: dict[str, list[float]] = {}  # key -> [sum of the mouth's openings, frames, sum of squares]
        self.opening_parts = opening_parts
        self._parts: dict[str, list[float]] = {}  # key -> [sum of the openings, frames] for each part, in a row

    def durations(self) -> DurationModel:
        """Median recorded duration of every phoneme (stressed ones apart) seen so far; the last phoneme of an
        utterance, which runs to the end of the recording, is left out."""
        medians = {key: float(np.median(values)) for key, values in self._seen.items() if values}
        everything = [d for values in self._seen.values() for d in values]
        openness = {key: sums[0] / sums[1] for key, sums in self._open.items() if sums[1] > 0}
        return DurationModel(medians, default=float(np.median(everything)) if everything else DurationModel().default,
                             openness=openness, mouth_weight=self.mouth_weight,
                             phoneme_stiffness=self.phoneme_stiffness, spreads=self._spreads(),
                             profiles=self._profiles() if self.opening_parts > 1 else None)

    def _spreads(self) -> dict[str, tuple[float, float]]:
        """Per key seen at least twice, with its mouth's squared openings summed: the standard deviation of the log
        duration and of the opening while it is spoken."""
        spreads = {}
        for key, sums in self._open.items():
            durations = self._seen.get(key, [])
            if len(sums) == 3 and sums[1] > 1 and len(durations) > 1:
                variance = max(sums[2] / sums[1] - (sums[0] / sums[1]) ** 2, 0.0)
                spreads[key] = (float(np.std(np.log(np.maximum(durations, 1e-4)))), float(np.sqrt(variance)))
        return spreads

    def _accumulate(self, metas: list[dict]) -> None:
        """Each recorded phoneme's duration, and how open the mouth is while it sounds: over the whole phoneme
        (mean and squares) and over each of its ``opening_parts`` equal parts (by the frame centres inside it)."""
        opening, known = recorded_opening(metas, self.spec)
        centres = (np.arange(opening.shape[1]) + 0.5) / self.spec.fps
        for row, meta in enumerate(metas):
            spans = recorded_spans(meta)
            keys = stress_keys(spans, self.phonemizer(meta.get("transcript")))
            for span, key in zip(spans[:-1], keys or [], strict=False):  # the last runs to the clip's end
                self._seen[key].append(span.end - span.start)
                inside = np.nonzero((centres >= span.start) & (centres < span.end) & known[row].numpy())[0]
                if not len(inside):
                    continue
                values = opening[row].numpy()[inside]
                sums = self._open.setdefault(key, [0.0, 0.0, 0.0])
                sums[0] += float(values.sum())
                sums[1] += len(inside)
                sums[2] += float((values ** 2).sum())
                where = (centres[inside] - span.start) / (span.end - span.start)
                part = np.minimum((where * self.opening_parts).astype(int), self.opening_parts - 1)
                sums = np.stack([np.bincount(part, weights=values, minlength=self.opening_parts),
                                 np.bincount(part, minlength=self.opening_parts)], axis=1).ravel()
                parts = self._parts.setdefault(key, [0.0] * (2 * self.opening_parts))
                self._parts[key] = [a + float(b) for a, b in zip(parts, sums, strict=True)]

    def _profiles(self) -> dict[str, list[float | None]]:
        """The mean opening over each part of every phoneme seen (None for a part no frame centre fell in)."""
        return {key: [sums[2 * i] / sums[2 * i + 1] if sums[2 * i + 1] > 0 else None for i in range(len(sums) // 2)]
                for key, sums in self._parts.items()}

    def _losses(self, batch: dict) -> dict[str, torch.Tensor]:
        target = torch.stack([speaking_frames(meta, self.spec) for meta in batch["meta"]]).to(self.device)
        valid = batch["mask"].bool() if "mask" in batch else torch.ones_like(target)
        logits, opening = self.net.predict(batch["frames"])
        logits = logits[:, : target.shape[1]]
        loss = F.binary_cross_entropy_with_logits(logits[valid], target[valid].float())
        losses = {"loss": loss, "frame_acc": ((logits[valid] > 0) == target[valid]).float().mean()}
        if opening is not None:  # the mouth opening the clips recorded (the talking head draws it), where known
            recorded, known = recorded_opening(batch["meta"], self.spec)
            known = known.to(self.device) & valid
            if known.any():
                error = (opening[:, : recorded.shape[1]] - recorded.to(self.device)).pow(2)[known].mean()
                losses["opening_mse"] = error
                losses["loss"] = loss + error
        return losses

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.current_epoch == 0:  # one pass over the data is enough for the durations and openings
            self._accumulate(batch["meta"])
        losses = self._losses(batch)
        self.check_finite(losses["loss"])
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=len(batch["meta"]))
        return losses["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        losses = self._losses(batch)
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, prog_bar=True, sync_dist=True,
                      batch_size=len(batch["meta"]))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[DURATIONS_KEY] = {key: list(values) for key, values in self._seen.items()}
        checkpoint[OPENNESS_KEY] = {key: list(values) for key, values in self._open.items()}
        checkpoint[PARTS_KEY] = {key: list(values) for key, values in self._parts.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._seen = defaultdict(list, {k: list(v) for k, v in (checkpoint.get(DURATIONS_KEY) or {}).items()})
        self._open = {k: list(v) for k, v in (checkpoint.get(OPENNESS_KEY) or {}).items()}
        self._parts = {k: list(v) for k, v in (checkpoint.get(PARTS_KEY) or {}).items()}

    def export_to(self, out_dir: str | Path) -> Path | None:
        """The aligner's export: the activity network's weights + its config and the phoneme durations."""
        if self._trainer is not None and not self.trainer.is_global_zero:
            return None
        config: dict[str, Any] = {"format": FORMAT, "model": (self.run_config or {}).get("model"),
                                  "durations": self.durations().state(), "fps": self.spec.fps,
                                  "image_size": self.spec.image_size}
        return write_export(out_dir, cpu_weights(self.net), config, format=FORMAT)
