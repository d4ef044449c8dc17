"""Procedural test sounds (numpy only) for watermark tests, attacks and the benchmark.

They stand in for v2a's outputs (impacts, ambience, music, voices) without shipping data:
each generator is seeded through the ``rng`` it is given, so every clip is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

Generator = Callable[[np.random.Generator, int, float], np.ndarray]


def _normalise(x: np.ndarray, rms_db: float = -20.0, peak: float = 0.9) -> np.ndarray:
    """Scale to a target RMS (dBFS), then down again if the peak would exceed ``peak``."""
    rms = float(np.sqrt(np.mean(x**2))) + 1e-12
    y = x * (10 ** (rms_db / 20) / rms)
    top = float(np.max(np.abs(y))) + 1e-12
    if top > peak:
        y *= peak / top
    return y.astype(np.float32)


def impacts(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Sparse hits: damped modal resonances plus a short noise click, at random onsets."""
    n = int(sr * seconds)
    t = np.arange(int(sr * 0.8)) / sr
    out = np.zeros(n)
    for onset in np.sort(rng.uniform(0, seconds, size=rng.integers(3, 4 + int(2 * seconds)))):
        start = int(onset * sr)
        seg = np.zeros_like(t)
        for _ in range(rng.integers(2, 6)):
            f = rng.uniform(150, min(5000, sr / 2.5))
            seg += rng.uniform(0.2, 1) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) * np.exp(-t * rng.uniform(8, 40))
        seg += rng.standard_normal(len(t)) * np.exp(-t * rng.uniform(60, 200)) * rng.uniform(0.3, 1.5)
        stop = min(n, start + len(seg))
        out[start:stop] += seg[: stop - start] * rng.uniform(0.3, 1)
    return _normalise(out)


def tones(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """A harmonic tone mix: 2-3 voices of notes with harmonics, vibrato and note changes."""
    n = int(sr * seconds)
    out = np.zeros(n)
    for _ in range(rng.integers(2, 4)):
        note_len = int(sr * rng.uniform(0.3, 1.2))
        f0 = np.repeat(110 * 2 ** (rng.integers(0, 30, size=n // note_len + 1) / 12), note_len)[:n]
        f0 = f0 * (1 + 0.004 * np.sin(2 * np.pi * rng.uniform(4, 6) * np.arange(n) / sr))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        env = 0.6 + 0.4 * np.abs(np.sin(np.pi * np.arange(n) / note_len))
        for h in range(1, 9):
            out += env * np.sin(h * phase) * (0.7 ** h) * (f0 * h < sr / 2.2)
    return _normalise(out)


def noise(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Coloured noise ambience (wind/rain-like) with slow random amplitude changes."""
    n = int(sr * seconds)
    lo = rng.uniform(80, 1500)
    hi = min(sr / 2.2, lo * rng.uniform(2, 20))
    sos = signal.butter(2, [lo, hi], btype="band", fs=sr, output="sos")
    x = signal.sosfilt(sos, rng.standard_normal(n))
    env = np.interp(np.arange(n), np.linspace(0, n, 12), rng.uniform(0.2, 1, size=12))
    return _normalise(x * env)


def chirps(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Frequency sweeps (sirens, whooshes) of random length and direction."""
    n = int(sr * seconds)
    out = np.zeros(n)
    pos = 0
    while pos < n:
        length = min(n - pos, int(sr * rng.uniform(0.3, 1.5)))
        f = np.geomspace(rng.uniform(200, 3000), rng.uniform(200, min(6000, sr / 2.5)), length)
        seg = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(length)
        out[pos: pos + length] += seg
        pos += length + int(sr * rng.uniform(0, 0.4))
    return _normalise(out + 0.01 * rng.standard_normal(n))


def speech_like(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Formant-filtered glottal pulse train with moving F0 and formants, syllables and pauses."""
    n = int(sr * seconds)
    syll = int(sr * 0.2)
    n_syll = n // syll + 1
    f0 = np.interp(np.arange(n), np.arange(n_syll) * syll, rng.uniform(90, 240, n_syll))
    phase = np.cumsum(f0) / sr
    src = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)  # one pulse per period
    src = signal.lfilter([1.0], [1.0, -0.95], src)  # glottal tilt
    voiced = np.repeat(rng.random(n_syll) > 0.25, syll)[:n]
    src = np.where(voiced, src, 0.3 * rng.standard_normal(n))  # unvoiced = fricative noise
    out = np.zeros(n)
    for i in range(n_syll):
        a, b = i * syll, min(n, (i + 1) * syll + syll // 2)
        if a >= n:
            break
        seg = src[a:b]
        y = np.zeros_like(seg)
        for fc, bw in zip(rng.uniform([300, 900, 2200], [900, 2200, 3400]), (80, 120, 160), strict=True):
            fc = min(fc, sr / 2.3)
            r = np.exp(-np.pi * bw / sr)
            y += signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], seg)
        win = np.hanning(len(seg)) * (rng.random() > 0.15)  # some syllables are pauses
        out[a:b] += y * win
    return _normalise(out)


KINDS: dict[str, Generator] = {
    "impacts": impacts,
    "tones": tones,
    "noise": noise,
    "chirps": chirps,
    "speech_like": speech_like,
}


def mixture(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """A random mix of 2-3 kinds at random relative levels (a generic soundtrack)."""
    names = rng.choice(list(KINDS), size=rng.integers(2, 4), replace=False)
    out = sum(KINDS[name](rng, sr, seconds) * rng.uniform(0.3, 1.0) for name in names)
    return _normalise(np.asarray(out))


def random_clip(rng: np.random.Generator, sr: int, seconds: float, kind: str | None = None) -> np.ndarray:
    """One clip of ``kind`` (a key of ``KINDS``, ``"mixture"``, or None for a random choice)."""
    if kind is None:
        kind = str(rng.choice([*KINDS, "mixture"]))
    gen = mixture if kind == "mixture" else KINDS[kind]
    return gen(rng, sr, seconds)
