"""Materials of the impact scenes: what an object looks like and how it sounds when it lands."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Material:
    """Look and sound of one material.

    ``modes`` are (frequency Hz, relative amplitude) pairs of a modal impact model; ``decay`` is the
    e-folding time in seconds; ``noise`` mixes a short broadband click (wood and rubber are thuddy,
    metal and glass ring). ``restitution`` sets how high the object bounces again.
    """

    name: str
    colour: tuple[int, int, int]
    modes: tuple[tuple[float, float], ...]
    decay: float
    noise: float
    restitution: float


MATERIALS: tuple[Material, ...] = (
    Material("metal", (170, 175, 195), ((1250.0, 1.0), (3410.0, 0.6), (5230.0, 0.35)), 0.22, 0.05, 0.55),
    Material("wood", (150, 95, 40), ((420.0, 1.0), (1130.0, 0.45)), 0.035, 0.5, 0.45),
    Material("glass", (90, 210, 240), ((2650.0, 1.0), (4900.0, 0.5), (6400.0, 0.3)), 0.09, 0.1, 0.4),
    Material("rubber", (220, 45, 45), ((140.0, 1.0), (310.0, 0.3)), 0.03, 0.3, 0.7),
)

MATERIAL_INDEX: dict[str, int] = {m.name: i for i, m in enumerate(MATERIALS)}
