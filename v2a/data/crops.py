"""Time crops that cut video and audio at the same instant, and the padding masks of short clips.

A crop is the model's clip length (``ClipSpec.duration``) taken from a stored clip that may be longer
(random start for training, a fixed start for evaluation) or shorter (then padded, and masked). Crop
starts lie on the video frame grid, so the audio token grid stays aligned with the frames: audio
sample ``round(k * sample_rate / fps)`` is the instant frame ``k`` appears.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from v2a.shapes import ClipSpec

# Event fields that are times on the clip's clock (shifted by a crop); others are copied as they are.
TIME_FIELDS = ("time", "start", "end")
# Top-level fields holding one value per stored video frame (e.g. the talking head's mouth opening):
# a crop keeps the values of the frames it shows.
PER_FRAME_FIELDS = ("mouth", "mouth_opening")


class TimeCrop:
    """Chooses where a crop starts, in video frames of the model's grid, within ``slack`` frames."""

    def start_frame(self, slack: int, rng: random.Random | None) -> int:
        raise NotImplementedError


class StartCrop(TimeCrop):
    """Always the beginning of the clip (deterministic: evaluation)."""

    def start_frame(self, slack: int, rng: random.Random | None) -> int:
        return 0


class CenterCrop(TimeCrop):
    """The middle of the clip's valid part (deterministic)."""

    def start_frame(self, slack: int, rng: random.Random | None) -> int:
        return slack // 2


class RandomCrop(TimeCrop):
    """A uniform start on the frame grid (training); needs the sample's ``rng`` for repeatable crops."""

    def start_frame(self, slack: int, rng: random.Random | None) -> int:
        if rng is None:
            raise ValueError("RandomCrop needs a random generator (training streams pass one per sample)")
        return rng.randint(0, slack) if slack > 0 else 0


@dataclass(frozen=True)
class CropWindow:
    """Where a crop lies in its stored clip, and how much of it holds real content."""

    start_frame: int  # on the model's frame grid
    start_s: float
    valid_s: float  # seconds of real content inside the crop (<= the crop's duration)

    def frame_mask(self, spec: ClipSpec) -> np.ndarray:
        """bool [n_video_frames]: frames shown while real content plays."""
        count = min(spec.n_video_frames, math.ceil(self.valid_s * spec.fps - 1e-6))
        return np.arange(spec.n_video_frames) < count

    def audio_mask(self, spec: ClipSpec) -> np.ndarray:
        """bool [n_samples]: samples of real content."""
        count = min(spec.n_samples, int(round(self.valid_s * spec.sample_rate)))
        return np.arange(spec.n_samples) < count


def choose_window(valid_s: float, spec: ClipSpec, crop: TimeCrop, rng: random.Random | None) -> CropWindow:
    """The crop of ``spec.duration`` seconds inside a clip whose first ``valid_s`` seconds are real content."""
    if valid_s <= 0:
        raise ValueError(f"clip has no content (valid duration {valid_s:.3f} s)")
    # Last start that still fills the crop with real content (a short clip starts at 0 and is padded).
    slack = max(0, math.floor((valid_s - spec.duration) * spec.fps + 1e-6))
    start = crop.start_frame(slack, rng)
    start_s = start / spec.fps
    return CropWindow(start, start_s, min(spec.duration, valid_s - start_s))


def video_indices(window: CropWindow, spec: ClipSpec, source_fps: float, n_source: int) -> np.ndarray:
    """Indices of the stored frames on screen at each of the crop's frame times (nearest frame)."""
    times = window.start_s + np.arange(spec.n_video_frames) / spec.fps
    return np.minimum(np.round(times * source_fps + 1e-6).astype(np.int64), n_source - 1)


def crop_audio(audio: np.ndarray, window: CropWindow, spec: ClipSpec) -> np.ndarray:
    """The crop's samples (silence after the valid part and past the end of the stored audio)."""
    first = int(round(window.start_s * spec.sample_rate))
    out = np.zeros(spec.n_samples, dtype=np.float32)
    piece = audio[first : first + spec.n_samples]
    out[: len(piece)] = piece
    out[~window.audio_mask(spec)] = 0.0
    return out


def crop_meta(meta: dict, window: CropWindow, spec: ClipSpec) -> dict:
    """A copy of the clip's metadata on the crop's clock: events shifted, those outside the crop dropped."""
    out = dict(meta)
    events = []
    for event in meta.get("events", []):
        shifted = {k: (round(v - window.start_s, 6) if k in TIME_FIELDS and isinstance(v, int | float) else v)
                   for k, v in event.items()}
        begin, end = shifted.get("time", shifted.get("start")), shifted.get("end")
        if begin is None or (end if end is not None else begin) >= 0 and begin < window.valid_s:
            events.append(shifted)
    out["events"] = events
    source_fps = meta.get("fps") if isinstance(meta.get("fps"), int | float) and meta["fps"] > 0 else spec.fps
    for name in PER_FRAME_FIELDS:
        track = meta.get(name)
        if isinstance(track, list | tuple) and track:
            shown = video_indices(window, spec, float(source_fps), len(track))
            out[name] = [track[i] for i in shown[window.frame_mask(spec)]]
    out["duration"] = spec.duration
    if isinstance(meta.get("clip_start"), int | float):  # ingested clips: the crop's time in its source video
        out["clip_start"] = round(meta["clip_start"] + window.start_s, 3)
    out["crop_start"] = round(window.start_s, 6)
    out["valid_duration"] = round(window.valid_s, 6)
    return out
