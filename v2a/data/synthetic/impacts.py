"""Falling and bouncing objects: each floor contact is a visible event with an impact sound.

Timbre follows the material (shown by colour), loudness follows impact speed, pitch follows size.
Physics is integrated on a fine time grid so contact times are exact to 1 ms, independent of the
video frame rate; frames sample the continuous trajectory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from v2a.data.synthetic.materials import MATERIALS, Material
from v2a.shapes import ClipSpec

GRAVITY = 9.0  # scene heights per second squared: an object dropped from the top lands in ~0.45 s
FLOOR = 0.9  # floor line, as a fraction of the image height
MIN_BOUNCE_SPEED = 0.6  # below this the object comes to rest (no further audible contacts)
PHYSICS_DT = 1e-3


@dataclass
class SyntheticClip:
    """One rendered clip: frames uint8 [T, H, W, 3], mono float32 audio, and its ground truth."""

    frames: np.ndarray
    audio: np.ndarray
    meta: dict = field(default_factory=dict)


@dataclass
class _Object:
    material: Material
    x: float
    size: float
    y0: float
    v0: float
    start: float


def _simulate(obj: _Object, duration: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Height (fraction of image, 0 = top) on the physics grid, and (time, speed) of each contact."""
    n = int(round(duration / PHYSICS_DT))
    y = np.full(n, np.nan, dtype=np.float64)
    contacts: list[tuple[float, float]] = []
    floor = FLOOR - obj.size / 2
    pos, vel, resting = obj.y0, obj.v0, False
    for i in range(n):
        t = i * PHYSICS_DT
        if t < obj.start:
            continue
        if not resting:
            vel += GRAVITY * PHYSICS_DT
            pos += vel * PHYSICS_DT
            if pos >= floor and vel > 0:
                contacts.append((t, vel))
                pos = floor
                vel = -vel * obj.material.restitution
                if -vel < MIN_BOUNCE_SPEED:
                    resting, vel = True, 0.0
        y[i] = pos
    return y, contacts


def _impact_sound(material: Material, speed: float, size: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A modal impact: damped partials plus a short click, loudness proportional to speed."""
    length = int(sample_rate * min(0.6, 6 * material.decay + 0.02))
    t = np.arange(length) / sample_rate
    pitch = (0.08 / size) ** 0.5 * rng.uniform(0.95, 1.05)  # bigger objects sound lower
    sound = np.zeros(length)
    for freq, amp in material.modes:
        f = min(freq * pitch, 0.45 * sample_rate)
        sound += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    sound *= np.exp(-t / material.decay)
    click = rng.standard_normal(length) * np.exp(-t / 0.004)
    sound = (1 - material.noise) * sound + material.noise * click
    sound /= np.abs(sound).max() + 1e-9
    return (0.12 * speed * sound).astype(np.float32)


def _draw_frames(objects: list[_Object], heights: list[np.ndarray], spec: ClipSpec, background: np.ndarray) -> np.ndarray:
    size_px = spec.image_size
    frames = np.empty((spec.n_video_frames, size_px, size_px, 3), dtype=np.uint8)
    floor_row = int(FLOOR * size_px)
    for f in range(spec.n_video_frames):
        img = np.broadcast_to(background, (size_px, size_px, 3)).copy()
        img[floor_row:, :] = (background * 0.5 + 40).astype(np.uint8)
        idx = min(int(round(f / spec.fps / PHYSICS_DT)), len(heights[0]) - 1)
        for obj, y in zip(objects, heights, strict=True):
            if np.isnan(y[idx]):
                continue
            half = max(1.0, obj.size * size_px / 2)
            cy, cx = y[idx] * size_px, obj.x * size_px
            r0, r1 = int(round(cy - half)), int(round(cy + half))
            c0, c1 = int(round(cx - half)), int(round(cx + half))
            img[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = obj.material.colour
        frames[f] = img
    return frames


def material_caption(material: str) -> str:
    """The caption phrase of one object's material (also the prompts of the prompt-following test)."""
    return f"a {material} object bouncing on the floor"


NEUTRAL_COLOUR = (128, 128, 128)  # no material's colour: the object's look says nothing of its sound


def random_objects(rng: np.random.Generator, max_objects: int, duration: float) -> list[_Object]:
    """1..``max_objects`` objects of random material, position, size, height, speed and drop time."""
    n_objects = int(rng.integers(1, max_objects + 1))
    return [
        _Object(
            material=MATERIALS[int(rng.integers(len(MATERIALS)))],
            x=float(rng.uniform(0.15, 0.85)),
            size=float(rng.uniform(0.1, 0.22)),
            y0=float(rng.uniform(0.05, 0.4)),
            v0=float(rng.uniform(-1.0, 1.5)),
            start=float(rng.uniform(0.0, 0.5 * duration)),
        )
        for _ in range(n_objects)
    ]


def render_impact_clip(
    rng: np.random.Generator,
    spec: ClipSpec,
    *,
    max_objects: int = 2,
    noise_level: float = 0.003,
    hidden_material_prob: float = 0.0,
) -> SyntheticClip:
    """Render one clip of 1..``max_objects`` falling objects with exact event times and materials.

    With probability ``hidden_material_prob`` every object is drawn in one neutral grey: the video
    still shows *when* things land but no longer *what* they are made of, so only the caption tells
    the material (``meta["material_hidden"]``) — the ambiguous videos of the prompt-following test.
    """
    if not 0.0 <= hidden_material_prob <= 1.0:
        raise ValueError(f"hidden_material_prob must be in [0, 1], got {hidden_material_prob}")
    objects = random_objects(rng, max_objects, spec.duration)
    audio = (noise_level * rng.standard_normal(spec.n_samples)).astype(np.float32)
    heights, events = [], []
    for index, obj in enumerate(objects):
        y, contacts = _simulate(obj, spec.duration)
        heights.append(y)
        for t, speed in contacts:
            sound = _impact_sound(obj.material, speed, obj.size, spec.sample_rate, rng)
            start = int(round(t * spec.sample_rate))
            end = min(start + len(sound), spec.n_samples)
            audio[start:end] += sound[: end - start]
            events.append(
                {"time": round(t, 4), "kind": "impact", "source": index, "material": obj.material.name, "speed": round(speed, 3)}
            )
    events.sort(key=lambda e: e["time"])
    background = rng.integers(10, 60, size=3).astype(np.float32)
    # Drawn only when enabled, so the default keeps every existing clip's random stream unchanged.
    hidden = hidden_material_prob > 0 and bool(rng.random() < hidden_material_prob)
    drawn = [dataclasses.replace(o, material=dataclasses.replace(o.material, colour=NEUTRAL_COLOUR)) for o in objects] \
        if hidden else objects
    frames = _draw_frames(drawn, heights, spec, background)
    materials = sorted({o.material.name for o in objects})
    caption = " and ".join(material_caption(m) for m in materials)
    meta = {
        "fps": spec.fps,
        "sample_rate": spec.sample_rate,
        "duration": spec.duration,
        "caption": caption,
        "transcript": "",
        "negative_caption": "",
        "events": events,
        "materials": materials,
        "source": "synthetic:impacts",
        "license": "CC0-1.0",
    }
    if hidden_material_prob > 0:
        meta["material_hidden"] = hidden
    return SyntheticClip(frames=frames, audio=np.clip(audio, -1, 1), meta=meta)
