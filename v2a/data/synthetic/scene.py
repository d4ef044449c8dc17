"""Mixed scenes: each kind of source joins a clip with its own probability, in its own tile of the frame.

Untiled kinds (the music bed) paint the whole frame first; tiled kinds (impacts, fan, lamp, rain, a
talking head) each get one quadrant (or the whole frame when alone). The clip's json lists every source
with its tile and ground truth, all events sorted by time, the caption, the transcript and a negative
caption that names nothing audible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v2a.data.synthetic.base import AudioTrack, Canvas, Source, SourceResult
from v2a.data.synthetic.captions import join_captions, negative_caption
from v2a.data.synthetic.impacts import SyntheticClip
from v2a.shapes import ClipSpec


@dataclass(frozen=True)
class Kind:
    """One kind of source and the probability that a clip contains it."""

    probability: float
    source: Source


@dataclass(frozen=True)
class Scene:
    """The mixing recipe. At least one tiled kind is always present (picked by probability if none was drawn)."""

    kinds: dict[str, Kind]
    noise_level: float = 0.003
    max_tiled: int = 4
    headroom: float = 0.95

    def __post_init__(self) -> None:
        if not self.kinds:
            raise ValueError("a scene needs at least one kind of source")
        for name, kind in self.kinds.items():
            if not 0.0 <= kind.probability <= 1.0:
                raise ValueError(f"probability of kind {name!r} must be in [0, 1], got {kind.probability}")
        if not any(k.source.tiled and k.probability > 0 for k in self.kinds.values()):
            raise ValueError("a scene needs at least one tiled kind with a positive probability")
        if not 1 <= self.max_tiled <= 4:
            raise ValueError(f"max_tiled must be 1..4 (quadrants), got {self.max_tiled}")

    def choose(self, rng: np.random.Generator) -> list[str]:
        """The kinds of one clip: untiled ones first (they paint the background), then the tiled ones."""
        names = list(self.kinds)
        drawn = [name for name, u in zip(names, rng.uniform(size=len(names)), strict=True)
                 if u < self.kinds[name].probability]
        tiled = [n for n in drawn if self.kinds[n].source.tiled]
        if not tiled:
            candidates = [n for n in names if self.kinds[n].source.tiled and self.kinds[n].probability > 0]
            weights = np.array([self.kinds[n].probability for n in candidates])
            tiled = [candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]]
        if len(tiled) > self.max_tiled:
            keep = sorted(rng.choice(len(tiled), size=self.max_tiled, replace=False))
            tiled = [tiled[i] for i in keep]
        return [n for n in drawn if not self.kinds[n].source.tiled] + tiled


def _tiles(count: int, size: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(row, column, side) of ``count`` square tiles: the whole frame for one, random quadrants otherwise."""
    if count == 1:
        return [(0, 0, size)]
    half = size // 2
    return [((int(q) // 2) * half, (int(q) % 2) * half, half) for q in rng.permutation(4)[:count]]


def render_scene(rng: np.random.Generator, spec: ClipSpec, scene: Scene) -> SyntheticClip:
    """Render one mixed clip: frames uint8 [T, H, W, 3], mono float32 audio, and its ground truth."""
    names = scene.choose(rng)
    size = spec.image_size
    background = rng.integers(10, 60, size=3).astype(np.float32)
    frames = np.empty((spec.n_video_frames, size, size, 3), dtype=np.float32)
    frames[:] = background
    audio = AudioTrack(scene.noise_level * rng.standard_normal(spec.n_samples), spec.sample_rate)

    tiled = [n for n in names if scene.kinds[n].source.tiled]
    tiles = dict(zip(tiled, _tiles(len(tiled), size, rng), strict=True))
    results: list[SourceResult] = []
    described: list[dict] = []
    for name in names:
        tile = tiles.get(name)
        if tile is None:
            canvas = Canvas(frames, spec.fps)
        else:
            row, col, side = tile
            canvas = Canvas(frames[:, row:row + side, col:col + side], spec.fps, origin=(row, col))
        result = scene.kinds[name].source.render(canvas, audio, rng)
        results.append(result)
        described.append({"kind": name, "name": result.name, "tile": list(tile) if tile else None,
                          "caption": result.caption, **result.info})

    peak = float(np.abs(audio.samples).max())
    gain = min(1.0, scene.headroom / peak) if peak > 0 else 1.0  # never clip: scale the whole mix instead
    events = sorted((e for r in results for e in r.events), key=lambda e: (e["time"], e["source"]))
    materials = sorted({o["material"] for d in described for o in d.get("objects", [])})
    meta = {
        "fps": spec.fps,
        "sample_rate": spec.sample_rate,
        "duration": spec.duration,
        "caption": join_captions(results),
        "transcript": " ".join(r.transcript for r in results if r.transcript),
        "negative_caption": negative_caption(results, rng),
        "events": events,
        "materials": materials,
        "kinds": names,
        "sources": described,
        "gain": round(gain, 4),
        "source": "synthetic:scene",
        "license": "CC0-1.0",
    }
    for result in results:
        meta.update({k: v for k, v in result.clip_keys.items() if k not in meta})
    pixels = np.clip(np.round(frames), 0, 255).astype(np.uint8)
    return SyntheticClip(frames=pixels, audio=(gain * audio.samples).astype(np.float32), meta=meta)
