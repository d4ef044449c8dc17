"""What every scene source shares: the canvas it draws on, the audio it writes into, what it reports.

A scene is a list of sources. Each source draws its visible cause onto a :class:`Canvas` (a view of the
clip's frames, possibly one tile of them), adds its sound into an :class:`AudioTrack`, and returns a
:class:`SourceResult` saying what happened (events, caption phrase, audible tags, per-frame state).
Sources never read each other's output, so any subset of kinds mixes in one clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class Canvas:
    """Float RGB frames [T, H, W, 3] in 0..255 (a view: writes land in the clip) and their frame rate."""

    frames: np.ndarray
    fps: int
    origin: tuple[int, int] = (0, 0)  # top-left pixel of this view in the whole frame (recorded in the json)

    @property
    def n_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        return self.frames.shape[2]

    def frame_times(self) -> np.ndarray:
        """Presentation time of each frame (seconds): frame ``f`` shows the scene at ``f / fps``."""
        return np.arange(self.n_frames) / self.fps


@dataclass
class AudioTrack:
    """The clip's mono float64 mix, written in place by every source."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def add(self, sound: np.ndarray, at: int = 0) -> None:
        """Mix ``sound`` in starting at sample ``at`` (the part past the clip's end is dropped)."""
        at = max(0, at)
        end = min(at + len(sound), len(self.samples))
        if end > at:
            self.samples[at:end] += sound[: end - at]


@dataclass
class SourceResult:
    """What one source did: its name, events, caption phrase, audible tags and extra ground truth.

    ``tags`` are the nouns a listener could hear ("fan", "metal", "speech"); a negative caption must not
    share any of them. ``info`` holds per-frame state tracks and parameters, stored with the source in the
    clip's json; ``clip_keys`` are lifted to the json's top level (e.g. ``mouth``, read by the speech metrics).
    """

    name: str
    caption: str
    tags: frozenset[str]
    events: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    transcript: str = ""
    clip_keys: dict = field(default_factory=dict)


class Source(Protocol):
    """A kind of sound with a visible cause. ``tiled`` sources get their own tile, the others the whole frame."""

    kind: str
    tiled: bool

    def render(self, canvas: Canvas, audio: AudioTrack, rng: np.random.Generator) -> SourceResult: ...


def smooth_curve(rng: np.random.Generator, n: int, low: float, high: float, knots: int = 3) -> np.ndarray:
    """A smooth random curve of ``n`` points in [low, high]: cosine-interpolated random knots."""
    values = rng.uniform(low, high, size=knots)
    if knots == 1:
        return np.full(n, values[0])
    position = np.linspace(0, knots - 1, n)
    left = np.minimum(position.astype(int), knots - 2)
    weight = (1 - np.cos(np.pi * (position - left))) / 2
    return values[left] * (1 - weight) + values[left + 1] * weight


def frame_rms(samples: np.ndarray, sample_rate: int, fps: int, n_frames: int) -> np.ndarray:
    """RMS of the audio over each video frame's interval [f / fps, (f + 1) / fps)."""
    per = sample_rate / fps
    out = np.zeros(n_frames)
    for f in range(n_frames):
        seg = samples[int(round(f * per)):int(round((f + 1) * per))]
        out[f] = np.sqrt(np.mean(seg**2)) if len(seg) else 0.0
    return out
