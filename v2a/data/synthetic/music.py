"""A music bed whose character follows the scene: colour sets the key's mode, motion sets the tempo.

The whole frame becomes a background of diagonal stripes in the scene's colour, scrolling one stripe
period per beat, and flashing brighter on each beat. Warm colours (hue < 0.17 or > 0.9) get a major
chord, cool ones a minor chord; a sustained pad plays the chord and a plucked note sounds on every beat
(recorded as ``note`` events). Drawn first, so every other source sits on top of it.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from v2a.data.synthetic.base import AudioTrack, Canvas, SourceResult

MAJOR, MINOR = (0, 4, 7, 12), (0, 3, 7, 12)  # semitones of the chord tones the arpeggio walks through


def is_warm(hue: float) -> bool:
    """Reds, oranges and yellows (hue in [0, 1))."""
    return hue < 0.17 or hue > 0.9


@dataclass(frozen=True)
class MusicBed:
    """Tempo in [``min_bpm``, ``max_bpm``]; root note between A2 and A3."""

    min_bpm: float = 70.0
    max_bpm: float = 150.0
    level: float = 0.05
    kind: str = "music"
    tiled: bool = False

    def render(self, canvas: Canvas, audio: AudioTrack, rng: np.random.Generator) -> SourceResult:
        sr, n = audio.sample_rate, len(audio.samples)
        hue = float(rng.uniform())
        warm = is_warm(hue)
        rgb = np.array(colorsys.hsv_to_rgb(hue, 0.7, 0.35)) * 255
        bpm = float(rng.uniform(self.min_bpm, self.max_bpm))
        beat = 60.0 / bpm
        first = float(rng.uniform(0.05, beat))
        root = 110.0 * 2 ** (int(rng.integers(0, 12)) / 12)
        chord = MAJOR if warm else MINOR
        t = np.arange(n) / sr

        pad = sum(np.sin(2 * np.pi * root * 2 ** (s / 12) * t + 0.4 * k) for k, s in enumerate(chord[:3])) / 3
        swell = 0.6 + 0.4 * np.sin(2 * np.pi * t / (4 * beat))  # slow breathing of the pad, 4 beats a cycle
        audio.add(0.5 * self.level * swell * pad)

        events = []
        beat_times = np.arange(first, audio.duration - 0.02, beat)
        for index, time in enumerate(beat_times):
            freq = 2 * root * 2 ** (chord[index % len(chord)] / 12)
            length = int(min(beat, 0.5) * sr)
            tt = np.arange(length) / sr
            pluck = (np.sin(2 * np.pi * freq * tt) + 0.3 * np.sin(4 * np.pi * freq * tt)) * np.exp(-tt / 0.12)
            pluck *= np.minimum(1.0, tt / 0.002)  # 2 ms attack: a sharp but click-free onset
            audio.add(self.level * 1.5 * pluck, int(round(time * sr)))
            events.append({"time": round(float(time), 4), "kind": "note", "source": "music", "pitch_hz": round(freq, 2)})

        pulse = self._draw(canvas, rgb, beat_times, beat)
        mode = "major" if warm else "minor"
        pace = "slow" if bpm < 95 else "fast" if bpm > 125 else "moderate"
        caption = f"{'bright' if warm else 'calm'} {mode}-key music at a {pace} tempo"
        info = {"bpm": round(bpm, 2), "hue": round(hue, 4), "mode": mode, "root_hz": round(root, 2),
                "pulse": [round(float(p), 3) for p in pulse]}
        return SourceResult(name="music", caption=caption, tags=frozenset({"music", "melody"}), events=events, info=info)

    @staticmethod
    def _draw(canvas: Canvas, rgb: np.ndarray, beat_times: np.ndarray, beat: float) -> np.ndarray:
        """Stripes scrolling one period per beat, brightened by a decaying flash after each beat."""
        h, w = canvas.height, canvas.width
        period = max(4.0, 0.25 * min(h, w))
        rows, cols = np.mgrid[0:h, 0:w]
        times = canvas.frame_times()
        pulse = np.zeros(len(times))
        beat_frames = np.floor(beat_times * canvas.fps + 1e-9)  # a beat flashes in the frame whose interval holds it
        for f, t in enumerate(times):
            since = (f - beat_frames[beat_frames <= f]) / canvas.fps
            pulse[f] = np.exp(-since.min() / 0.08) if len(since) else 0.0
            shift = period * t / beat
            stripes = ((rows + cols + shift) % period) < period / 2
            frame = np.where(stripes[..., None], rgb, 0.6 * rgb)
            canvas.frames[f] = frame * (1 + 0.8 * pulse[f])
        return pulse
