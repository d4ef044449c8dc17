"""Rain falling into water: each drawn drop falls, splashes visibly at the surface and plinks there.

Drops are spawned by a Poisson process whose rate follows a smooth random curve, so both the number of
drops on screen and the density of plinks follow it (lagged by the fall time). Every splash sound starts
at the frame its splash is drawn; per-frame drop and splash counts are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v2a.data.synthetic.base import AudioTrack, Canvas, SourceResult, smooth_curve
from v2a.data.synthetic.draw import rectangle

DROP = (150.0, 190.0, 255.0)
SPLASH = (235.0, 245.0, 255.0)
WATER = (20.0, 50.0, 110.0)
SURFACE = 0.85  # water line, as a fraction of the tile height


@dataclass(frozen=True)
class RainSource:
    """Drop rate between ``min_rate`` and ``max_rate`` per second; each drop falls for ``fall_time`` s."""

    min_rate: float = 5.0
    max_rate: float = 80.0
    fall_time: float = 0.3
    level: float = 0.05
    kind: str = "rain"
    tiled: bool = True

    def render(self, canvas: Canvas, audio: AudioTrack, rng: np.random.Generator) -> SourceResult:
        sr, duration = audio.sample_rate, audio.duration
        grid = 200  # the rate curve on a 5 ms grid, from fall_time before the clip (drops already falling)
        span = duration + self.fall_time
        rate = smooth_curve(rng, int(span * grid), self.min_rate, self.max_rate, knots=int(rng.integers(2, 4)))
        spawned = rng.uniform(size=len(rate)) < rate / grid
        spawn_times = np.nonzero(spawned)[0] / grid - self.fall_time + rng.uniform(0, 1 / grid, size=int(spawned.sum()))
        hits = spawn_times + self.fall_time
        xs = rng.uniform(0.05, 0.95, size=len(hits))
        for hit in hits[(hits >= 0) & (hits < duration)]:
            length = int(0.03 * sr)
            t = np.arange(length) / sr
            plink = np.sin(2 * np.pi * rng.uniform(900, 2600) * t) * np.exp(-t / 0.008)
            plink += 0.5 * rng.standard_normal(length) * np.exp(-t / 0.002)
            audio.add(self.level * rng.uniform(0.5, 1.0) * plink, int(round(hit * sr)))

        times = canvas.frame_times()
        frame_of_hit = np.floor(hits * canvas.fps + 1e-9).astype(int)
        splashes = np.array([(frame_of_hit == f).sum() for f in range(canvas.n_frames)])
        falling = np.array([((spawn_times <= t) & (hits > t)).sum() for t in times])
        self._draw(canvas, spawn_times, hits, xs, frame_of_hit)
        mean_rate = float(np.mean(rate))
        trend = rate[-1] - rate[int(self.fall_time * grid)]
        strength = "heavy" if mean_rate > 0.6 * self.max_rate else "light" if mean_rate < 0.3 * self.max_rate else "steady"
        caption = (f"{strength} rain falling into water"
                   + (", getting heavier" if trend > 20 else ", easing off" if trend < -20 else ""))
        info = {"splashes": splashes.tolist(), "falling": falling.tolist(), "mean_rate": round(mean_rate, 2)}
        return SourceResult(name="rain", caption=caption, tags=frozenset({"rain", "water"}), info=info)

    def _draw(self, canvas: Canvas, spawn: np.ndarray, hits: np.ndarray, xs: np.ndarray, frame_of_hit: np.ndarray) -> None:
        h, w = canvas.height, canvas.width
        surface = SURFACE * h
        water = rectangle(h, w, surface, 0, h, w)
        drop_len = max(2.0, 0.08 * h)
        for f, t in enumerate(canvas.frame_times()):
            frame = canvas.frames[f]
            frame[water] = WATER
            for s, hit, x in zip(spawn, hits, xs, strict=True):
                col = x * w
                if s <= t < hit:  # falling: a streak whose bottom moves from the top to the surface
                    bottom = surface * (t - s) / self.fall_time
                    frame[rectangle(h, w, bottom - drop_len, col - 0.5, bottom, col + 0.5)] = DROP
            for x in xs[frame_of_hit == f]:  # splashing: drawn in the frame whose interval holds the hit
                col = x * w
                frame[rectangle(h, w, surface - 1.5, col - 1.5, surface + 0.5, col + 1.5)] = SPLASH
