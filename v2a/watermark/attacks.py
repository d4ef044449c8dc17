"""Removal attacks the mark must survive; each is ``attack(audio, sr, rng) -> (audio, sr)``.

Audio is mono ``[samples]`` float32. Randomness (crop position, echo delay, the interfering
sound...) comes only from ``rng`` so a benchmark run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch
import torchaudio.functional as AF
from scipy import signal

from v2a.media import codec_roundtrip, resample
from v2a.watermark import synth

Attack = Callable[[np.ndarray, int, np.random.Generator], tuple[np.ndarray, int]]


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def aac_64k(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """AAC (FFmpeg native encoder) at 64 kbit/s in ADTS, decoded back."""
    return codec_roundtrip(audio, sr, "aac", 64_000, "adts")


def mp3_64k(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """MP3 (LAME) at 64 kbit/s, decoded back."""
    return codec_roundtrip(audio, sr, "libmp3lame", 64_000, "mp3")


def opus_64k(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Opus at 64 kbit/s in Ogg, decoded back (at 48 kHz)."""
    return codec_roundtrip(audio, sr, "libopus", 64_000, "ogg")


def resample_8k(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Down to 8 kHz and back up to the original rate (loses everything above 4 kHz)."""
    return _f32(resample(resample(audio, sr, 8000), 8000, sr)), sr


def white_noise_20db(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Additive white Gaussian noise at 20 dB SNR (relative to the clip's mean power)."""
    power = float(np.mean(np.asarray(audio, dtype=np.float64) ** 2))
    noise = rng.standard_normal(len(audio)) * np.sqrt(power / 100.0)
    return _f32(audio + noise), sr


def gain_up_10db(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """+10 dB, clipped to [-1, 1] as a file would be (loud clips distort)."""
    return _f32(np.clip(audio * 10 ** 0.5, -1, 1)), sr


def gain_down_10db(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """-10 dB."""
    return _f32(audio * 10 ** -0.5), sr


def lowpass_4k(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """8th-order Butterworth low-pass at 4 kHz (zero phase)."""
    if sr <= 8000:
        return _f32(audio), sr
    sos = signal.butter(8, 4000, btype="low", fs=sr, output="sos")
    return _f32(signal.sosfiltfilt(sos, audio)), sr


def crop_2s(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A 2 s excerpt starting anywhere (sample-accurate, so not aligned to any frame grid)."""
    n = 2 * sr
    start = int(rng.integers(0, max(1, len(audio) - n + 1)))
    return _f32(audio[start: start + n]), sr


def _speed(audio: np.ndarray, sr: int, factor: Fraction) -> tuple[np.ndarray, int]:
    # Resample to sr/factor and play at sr: tempo and pitch both scale by ``factor``.
    return _f32(resample(audio, sr * factor, sr)), sr


def speed_change(factor: Fraction) -> Attack:
    """Play ``factor`` times faster by resampling (tempo and pitch together, like tape or a naive re-time).

    PerTh was measured failing every clip at 1.1x; AudioSeal is reported at ~0.6 for +-10-20 %.
    """
    def attack(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        return _speed(audio, sr, factor)
    attack.__doc__ = f"Play {float(factor):g}x as fast (pitch and length scale together)."
    return attack


def _stretch(audio: np.ndarray, rate: float, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Phase-vocoder time stretch (torchaudio): ``rate`` > 1 plays faster, the pitch stays."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    window = torch.hann_window(n_fft)
    spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, np.pi * hop, spec.shape[0])[:, None]
    stretched = AF.phase_vocoder(spec, rate, advance)
    return _f32(torch.istft(stretched, n_fft, hop, window=window).numpy())


def tempo_change(rate: float) -> Attack:
    """Play ``rate`` times as fast with the pitch kept: a player's or video editor's speed control."""
    def attack(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        return _stretch(audio, rate), sr
    attack.__doc__ = f"Tempo x{rate:g}, pitch kept (phase vocoder)."
    return attack


def pitch_shift(semitones: int) -> Attack:
    """Shift the pitch by ``semitones``, same length: stretch by the ratio, then resample back. What
    torchaudio's ``pitch_shift`` does, with the ratio as a small fraction (its exact ``2 ** (n / 12)``
    makes the resampling kernel huge)."""
    ratio = Fraction(2 ** (semitones / 12)).limit_denominator(100)

    def attack(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        stretched = _stretch(audio, 1 / float(ratio))
        return _speed(stretched, sr, ratio)[0][: len(audio)], sr
    attack.__doc__ = f"Pitch {semitones:+d} semitones, same length."
    return attack


def highpass_1500(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """8th-order Butterworth high-pass at 1.5 kHz, zero phase (AudioSeal's paper reports 0.61 here)."""
    sos = signal.butter(8, 1500, btype="high", fs=sr, output="sos")
    return _f32(signal.sosfiltfilt(sos, audio)), sr


def echo(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One echo with a random 100-300 ms delay and 0.3-0.5 gain."""
    delay = int(sr * rng.uniform(0.1, 0.3))
    gain = rng.uniform(0.3, 0.5)
    out = np.asarray(audio, dtype=np.float64).copy()
    out[delay:] += gain * audio[: len(audio) - delay]
    return _f32(np.clip(out / (1 + gain), -1, 1)), sr


MIX_PARTNERS = (*synth.KINDS, "mixture")   # kinds of sound the mix attacks add


def mix_with(audio: np.ndarray, sr: int, rng: np.random.Generator, *, level_db: float = 0.0,
             kind: str | None = None) -> tuple[np.ndarray, int]:
    """Mix with another (unmarked) procedural sound of ``kind`` (drawn when None), ``level_db`` relative
    to the audio's RMS level (0 = equal level), halved so the sum stays in range."""
    kind = str(rng.choice(MIX_PARTNERS)) if kind is None else kind   # the same draw random_clip would make
    other = synth.random_clip(rng, sr, len(audio) / sr, kind)[: len(audio)]
    other = np.pad(other, (0, len(audio) - len(other)))
    rms_a = np.sqrt(np.mean(np.asarray(audio, dtype=np.float64) ** 2)) + 1e-12
    rms_o = np.sqrt(np.mean(other.astype(np.float64) ** 2)) + 1e-12
    gain = (rms_a / rms_o) * 10 ** (level_db / 20)
    return _f32(np.clip(0.5 * (audio + other * gain), -1, 1)), sr


def mix_equal(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Mix with another (unmarked) procedural sound of a random kind at the same RMS level."""
    return mix_with(audio, sr, rng)


ATTACKS: dict[str, Attack] = {
    "aac_64k": aac_64k,
    "mp3_64k": mp3_64k,
    "opus_64k": opus_64k,
    "resample_8k": resample_8k,
    "noise_20db": white_noise_20db,
    "gain_+10db": gain_up_10db,
    "gain_-10db": gain_down_10db,
    "lowpass_4k": lowpass_4k,
    "crop_2s": crop_2s,
    "speed_+5%": speed_change(Fraction(21, 20)),
    "speed_-5%": speed_change(Fraction(19, 20)),
    "echo": echo,
    "mix_equal": mix_equal,
    # Beyond the uploader list: where the peers are reported weak (see each docstring), and speed
    # controls that keep the pitch (or shift it alone).
    "speed_+10%": speed_change(Fraction(11, 10)),
    "speed_-10%": speed_change(Fraction(9, 10)),
    "speed_+20%": speed_change(Fraction(6, 5)),
    "speed_-20%": speed_change(Fraction(4, 5)),
    "highpass_1.5k": highpass_1500,
    "tempo_+10%": tempo_change(1.1),
    "tempo_-10%": tempo_change(1 / 1.1),
    "pitch_+2st": pitch_shift(2),
    "pitch_-2st": pitch_shift(-2),
}
