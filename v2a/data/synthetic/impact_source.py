"""Falling and bouncing objects as a scene source (the mixable form of :mod:`impacts`).

Same physics, materials and impact sounds as the impacts-only benchmark; drawn into a square tile of
the frame instead of the whole frame, so other sources can share the clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v2a.data.synthetic.base import AudioTrack, Canvas, SourceResult
from v2a.data.synthetic.draw import rectangle
from v2a.data.synthetic.impacts import (
    FLOOR,
    PHYSICS_DT,
    _impact_sound,
    _Object,
    _simulate,
    material_caption,
    random_objects,
)


@dataclass(frozen=True)
class ImpactSource:
    """1..``max_objects`` objects of random materials dropped onto a floor; one event per contact."""

    max_objects: int = 2
    kind: str = "impacts"
    tiled: bool = True

    def render(self, canvas: Canvas, audio: AudioTrack, rng: np.random.Generator) -> SourceResult:
        duration = canvas.n_frames / canvas.fps
        objects = random_objects(rng, self.max_objects, duration)
        events = []
        heights = []
        for index, obj in enumerate(objects):
            y, contacts = _simulate(obj, duration)
            heights.append(y)
            for t, speed in contacts:
                audio.add(_impact_sound(obj.material, speed, obj.size, audio.sample_rate, rng).astype(np.float64),
                          int(round(t * audio.sample_rate)))
                events.append({"time": round(t, 4), "kind": "impact", "source": f"object{index}",
                               "material": obj.material.name, "speed": round(speed, 3)})
        self._draw(canvas, objects, heights)
        materials = sorted({o.material.name for o in objects})
        caption = " and ".join(material_caption(m) for m in materials)
        info = {"objects": [{"material": o.material.name, "x": round(o.x, 4), "size": round(o.size, 4)} for o in objects]}
        return SourceResult(name="impacts", caption=caption, tags=frozenset({"impact", *materials}),
                            events=sorted(events, key=lambda e: e["time"]), info=info)

    @staticmethod
    def _draw(canvas: Canvas, objects: list[_Object], heights: list[np.ndarray]) -> None:
        side = min(canvas.height, canvas.width)
        floor_row = int(FLOOR * canvas.height)
        # the floor: a darker band of whatever lies behind (a plain background or the music bed)
        canvas.frames[:, floor_row:] = canvas.frames[:, floor_row:] * 0.5 + 40
        for f in range(canvas.n_frames):
            idx = min(int(round(f / canvas.fps / PHYSICS_DT)), len(heights[0]) - 1)
            for obj, y in zip(objects, heights, strict=True):
                if np.isnan(y[idx]):
                    continue
                half = max(1.0, obj.size * side / 2)
                cy, cx = y[idx] * canvas.height, obj.x * canvas.width
                mask = rectangle(canvas.height, canvas.width, round(cy - half), round(cx - half),
                                 round(cy + half), round(cx + half))
                canvas.frames[f][mask] = obj.material.colour
