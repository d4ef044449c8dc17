"""Impacts whose materials are painted in other colours: the same sounds behind a new look.

The fine-tuning benchmark (v2a/conf/data_prep/synthetic_recoloured.yaml, bench/finetune.py) builds a shard set
where every material sounds as in the benchmark but shows a colour the trained model has never seen, so what a
fine-tuned model learns (the new colour -> sound mapping) and what it forgets (the old one) are both measurable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from v2a.data.synthetic.base import Canvas
from v2a.data.synthetic.impact_source import ImpactSource
from v2a.data.synthetic.impacts import _Object
from v2a.data.synthetic.materials import MATERIAL_INDEX


@dataclass(frozen=True)
class RecolouredImpacts(ImpactSource):
    """:class:`ImpactSource` with ``colours`` (material name -> RGB) replacing the materials' own colours."""

    colours: Mapping[str, Sequence[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.colours) - set(MATERIAL_INDEX)
        if unknown:
            raise ValueError(f"unknown materials {sorted(unknown)} (known: {list(MATERIAL_INDEX)})")
        for name, colour in self.colours.items():
            if len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour):
                raise ValueError(f"colour of {name} must be three values in 0..255, got {list(colour)}")

    def _draw(self, canvas: Canvas, objects: list[_Object], heights: list[np.ndarray]) -> None:
        painted = [dataclasses.replace(o, material=dataclasses.replace(
            o.material, colour=tuple(int(c) for c in self.colours.get(o.material.name, o.material.colour))))
            for o in objects]
        ImpactSource._draw(canvas, painted, heights)
