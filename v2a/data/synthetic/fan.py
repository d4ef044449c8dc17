"""A spinning fan (drawn as a wheel with one marked blade) whose motor pitch and loudness follow its speed.

The drawn angle is the integral of the speed, and the sound's fundamental is
``base_hz + hz_per_rps * speed``, phase-continuous, so what is heard changes exactly when what is seen
does. Speeds stay below a fifth of a turn per frame so the rotation is never ambiguous on video.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v2a.data.synthetic.base import AudioTrack, Canvas, SourceResult, smooth_curve
from v2a.data.synthetic.draw import disc, segment

RIM = (70.0, 70.0, 80.0)
HUB = (200.0, 200.0, 200.0)
BLADE = (250.0, 160.0, 30.0)


@dataclass(frozen=True)
class FanSource:
    """``max_rps`` turns per second at most (also capped at 0.2 turns per video frame)."""

    max_rps: float = 4.0
    base_hz: float = 90.0
    hz_per_rps: float = 60.0
    level: float = 0.08
    kind: str = "fan"
    tiled: bool = True

    def speed_limit(self, fps: int) -> float:
        return min(self.max_rps, 0.2 * fps)

    def render(self, canvas: Canvas, audio: AudioTrack, rng: np.random.Generator) -> SourceResult:
        top = self.speed_limit(canvas.fps)
        n = len(audio.samples)
        # speed profile on the audio grid: a smooth random curve (spin-up, slow-down or steady)
        rps = smooth_curve(rng, n, 0.15 * top, top, knots=int(rng.integers(2, 4)))
        if rng.uniform() < 0.3:  # sometimes start from rest: the fan is switched on in the clip
            ramp = np.clip((np.arange(n) / audio.sample_rate - rng.uniform(0.1, 0.5) * audio.duration) / 0.4, 0, 1)
            rps = rps * ramp
        pitch = self.base_hz + self.hz_per_rps * rps
        phase = 2 * np.pi * np.cumsum(pitch) / audio.sample_rate
        tone = np.sin(phase) + 0.5 * np.sin(2 * phase + 0.3) + 0.25 * np.sin(3 * phase + 1.1)
        air = rng.standard_normal(n)
        air = np.convolve(air, np.ones(8) / 8, mode="same")  # soft low-passed rush of air
        loudness = rps / top  # a stopped fan is silent
        audio.add(self.level * loudness * (tone / 1.75 + 0.6 * air))

        angle0 = rng.uniform(0, 2 * np.pi)
        turns = np.cumsum(rps) / audio.sample_rate  # drawn angle = integral of the heard speed
        frame_idx = np.minimum((canvas.frame_times() * audio.sample_rate).round().astype(int), n - 1)
        angles = angle0 + 2 * np.pi * turns[frame_idx]
        self._draw(canvas, angles)

        start, end = float(rps[frame_idx[0]]), float(rps[frame_idx[-1]])
        trend = "spinning up" if end > 1.3 * start + 0.2 else "slowing down" if start > 1.3 * end + 0.2 else "whirring steadily"
        info = {
            "rps": [round(float(v), 3) for v in rps[frame_idx]],
            "pitch_hz": [round(float(v), 2) for v in pitch[frame_idx]],
            "angle": [round(float(a % (2 * np.pi)), 4) for a in angles],
            "base_hz": self.base_hz, "hz_per_rps": self.hz_per_rps,
        }
        return SourceResult(name="fan", caption=f"a fan {trend}", tags=frozenset({"fan", "motor"}), info=info)

    @staticmethod
    def _draw(canvas: Canvas, angles: np.ndarray) -> None:
        h, w = canvas.height, canvas.width
        centre = (h / 2, w / 2)
        radius = 0.4 * min(h, w)
        rim = disc(h, w, centre, radius) & ~disc(h, w, centre, radius - max(1.0, 0.08 * radius))
        hub = disc(h, w, centre, max(1.0, 0.12 * radius))
        for f, angle in enumerate(angles):
            tip = (centre[0] - 0.85 * radius * np.cos(angle), centre[1] + 0.85 * radius * np.sin(angle))
            blade = segment(h, w, centre, tip, max(1.5, 0.18 * radius))
            frame = canvas.frames[f]
            frame[rim] = RIM
            frame[blade & ~hub] = BLADE
            frame[hub] = HUB
