"""A lamp that hums (mains hum and its harmonics) while it is lit, and clicks when it is switched.

The lamp is drawn lit in frame ``f`` exactly when it is on at time ``f / fps``; the hum starts and stops
at the switching times (recorded as ``switch_on`` / ``switch_off`` events) with a 5 ms ramp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v2a.data.synthetic.base import AudioTrack, Canvas, SourceResult
from v2a.data.synthetic.draw import disc, rectangle

LIT = (255.0, 235.0, 120.0)
GLOW = (150.0, 130.0, 60.0)
UNLIT = (60.0, 60.0, 55.0)
CORD = (30.0, 30.0, 30.0)


@dataclass(frozen=True)
class LampSource:
    """0..``max_switches`` switchings, at least ``min_gap`` seconds apart; hum at twice the mains frequency."""

    max_switches: int = 3
    min_gap: float = 0.3
    level: float = 0.05
    kind: str = "lamp"
    tiled: bool = True

    def _switch_times(self, rng: np.random.Generator, duration: float) -> list[float]:
        count = int(rng.integers(0, self.max_switches + 1))
        times: list[float] = []
        for _ in range(20 * max(count, 1)):  # rejection sampling; gives up quietly with fewer switches
            if len(times) == count:
                break
            t = float(rng.uniform(0.1, duration - 0.1))
            if all(abs(t - other) >= self.min_gap for other in times):
                times.append(t)
        return sorted(round(t, 4) for t in times)

    def render(self, canvas: Canvas, audio: AudioTrack, rng: np.random.Generator) -> SourceResult:
        sr, n = audio.sample_rate, len(audio.samples)
        lit_at_start = bool(rng.uniform() < 0.5)
        switches = self._switch_times(rng, audio.duration)
        lit_at_start |= not switches  # a lamp that stays dark would be silent: never render one
        mains = float(rng.choice([50.0, 60.0]))
        t = np.arange(n) / sr
        state = np.full(n, lit_at_start)
        for time in switches:
            state[int(round(time * sr)):] ^= True
        # a 5 ms ramp at each switch: no click from the hum itself, the switch click is added on purpose
        ramp = np.convolve(state.astype(float), np.ones(int(0.005 * sr)) / int(0.005 * sr), mode="full")[:n]
        hum = sum(amp * np.sin(2 * np.pi * k * 2 * mains * t + phase)
                  for k, amp, phase in ((1, 1.0, 0.0), (2, 0.5, 0.7), (3, 0.3, 1.9), (5, 0.15, 0.4)))
        audio.add(self.level * ramp * hum / 1.95)
        events = []
        for index, time in enumerate(switches):
            on = lit_at_start ^ (index % 2 == 0)
            click = rng.standard_normal(int(0.008 * sr)) * np.exp(-np.arange(int(0.008 * sr)) / (0.0015 * sr))
            audio.add(0.6 * self.level * click, int(round(time * sr)))
            events.append({"time": time, "kind": "switch_on" if on else "switch_off", "source": "lamp"})

        frame_idx = np.minimum((canvas.frame_times() * sr).round().astype(int), n - 1)
        lit = state[frame_idx]
        self._draw(canvas, lit)
        caption = "a lamp being switched on and off, humming while lit" if switches else "a lamp humming"
        tags = frozenset({"lamp", "hum", "switch"})
        info = {"lit": [int(v) for v in lit], "mains_hz": mains, "hum_hz": 2 * mains}
        return SourceResult(name="lamp", caption=caption, tags=tags, events=events, info=info)

    @staticmethod
    def _draw(canvas: Canvas, lit: np.ndarray) -> None:
        h, w = canvas.height, canvas.width
        centre = (0.45 * h, w / 2)
        radius = 0.18 * min(h, w)
        bulb = disc(h, w, centre, radius)
        glow = disc(h, w, centre, 1.7 * radius) & ~bulb
        cord = rectangle(h, w, 0, w / 2 - max(0.5, 0.02 * w), centre[0] - radius, w / 2 + max(0.5, 0.02 * w))
        for f, on in enumerate(lit):
            frame = canvas.frames[f]
            if on:
                frame[glow] = GLOW
            frame[cord] = CORD
            frame[bulb] = LIT if on else UNLIT
