"""Audio reading, writing, resampling and in-memory codec round trips (PyAV + torchaudio).

Everything here works on float32 numpy arrays shaped ``[channels, samples]`` so callers (the
watermark, generation's muxer, training's audio samples) never have to care which container or
sample format a file used.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


class AudioReadError(RuntimeError):
    """A file could not be opened, or holds no decodable audio stream."""


def as_2d(audio: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``([channels, samples] float32, was_mono)`` for a 1-D or 2-D array."""
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        return arr[None, :], True
    if arr.ndim != 2:
        raise ValueError(f"audio must be [samples] or [channels, samples], got shape {arr.shape}")
    return arr, False


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels of a ``[channels, samples]`` (or 1-D) array into ``[samples]``."""
    arr, _ = as_2d(audio)
    return arr.mean(axis=0)


def resample(audio: np.ndarray, orig_sr: int | float | Fraction, new_sr: int | float | Fraction) -> np.ndarray:
    """Band-limited resampling along the last axis with torchaudio.

    Rates may be fractional (speed changes use e.g. 21/20); the ratio is reduced to a small
    fraction first because torchaudio's kernel size grows with the reduced numerator.
    """
    ratio = Fraction(new_sr) / Fraction(orig_sr)
    ratio = ratio.limit_denominator(1000)
    if ratio == 1:
        return np.asarray(audio, dtype=np.float32).copy()
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    y = AF.resample(x, orig_freq=ratio.denominator, new_freq=ratio.numerator)
    return y.numpy()


def decode(source: str | Path | bytes | io.BytesIO) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any container PyAV opens.

    Returns ``([channels, samples] float32, sample_rate)``. Raises ``AudioReadError`` with a
    one-line message for unreadable files or files without audio.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        container = av.open(source if isinstance(source, io.BytesIO) else str(source), "r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise AudioReadError(f"cannot open: {exc}") from None
    try:
        streams = container.streams.audio
        if not streams:
            raise AudioReadError("no audio stream")
        stream = streams[0]
        chunks: list[np.ndarray] = []
        rate = stream.codec_context.sample_rate or stream.rate
        try:
            # 'fltp' gives planar float32 [channels, n]; the resampler also unifies odd layouts.
            resampler = av.AudioResampler(format="fltp")
            for frame in container.decode(stream):
                rate = frame.sample_rate
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.FFmpegError as exc:
            raise AudioReadError(f"decode failed: {exc}") from None
        if not chunks:
            raise AudioReadError("audio stream holds no samples")
        audio = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
        return audio, int(rate)
    finally:
        container.close()


def _encode_to(container: av.container.OutputContainer, audio: np.ndarray, sr: int, codec: str,
               bitrate: int | None) -> None:
    """Encode ``[channels, samples]`` float32 into an open output container."""
    channels = audio.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    stream = container.add_stream(codec, rate=sr, layout=layout)
    if bitrate:
        stream.bit_rate = bitrate
    ctx = stream.codec_context
    fmt = ctx.format.name if ctx.format is not None else "fltp"
    # Encoders want fixed-size frames (AAC 1024, MP3 1152, Opus 20 ms); the resampler re-blocks.
    resampler = av.AudioResampler(format=fmt, layout=layout, rate=sr, frame_size=ctx.frame_size or None)
    src = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.float32), format="fltp", layout=layout)
    src.sample_rate = sr
    for frame in resampler.resample(src) + resampler.resample(None):
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def codec_roundtrip(audio: np.ndarray, sr: int, codec: str, bitrate: int, fmt: str) -> tuple[np.ndarray, int]:
    """Encode to ``codec`` at ``bitrate`` bit/s in an in-memory ``fmt`` container and decode back.

    Returns the decoded audio (same channel count) and its sample rate (Opus decodes at 48 kHz).
    """
    arr, mono = as_2d(audio)
    arr = arr[:2]
    if codec == "libopus" and sr not in (8000, 12000, 16000, 24000, 48000):
        arr, sr = resample(arr, sr, 48000), 48000
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        _encode_to(container, np.clip(arr, -1.0, 1.0), sr, codec, bitrate)
    out, out_sr = decode(buf.getvalue())
    return (out.mean(axis=0) if mono else out), out_sr


# Output formats by extension: soundfile handles lossless ones, PyAV the lossy ones.
_PYAV_WRITERS = {".mp3": ("libmp3lame", "mp3"), ".m4a": ("aac", "ipod"), ".aac": ("aac", "adts"),
                 ".opus": ("libopus", "ogg")}


def write(path: str | Path, audio: np.ndarray, sr: int, bitrate: int = 192_000) -> Path:
    """Write audio to ``path``; the extension picks the format (wav/flac/ogg via soundfile,
    mp3/m4a/aac/opus via PyAV at ``bitrate``).

    ``audio`` is ``[samples]`` or ``[channels, samples]``. The file is written under a temporary
    name in the same folder and renamed, so an interrupted write never leaves a half file at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr, _ = as_2d(audio)
    ext = path.suffix.lower()
    if ext not in _PYAV_WRITERS and ext.lstrip(".").upper() not in sf.available_formats():
        raise ValueError(f"cannot write {path.name}: unknown audio format {ext!r} "
                         f"(wav, flac, ogg or another libsndfile format, or {', '.join(_PYAV_WRITERS)})")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")   # keeps the suffix: it names the format
    try:
        if ext in _PYAV_WRITERS:
            codec, fmt = _PYAV_WRITERS[ext]
            if codec == "libopus" and sr not in (8000, 12000, 16000, 24000, 48000):
                arr, sr = resample(arr, sr, 48000), 48000
            with av.open(str(tmp), "w", format=fmt) as container:
                _encode_to(container, np.clip(arr[:2], -1.0, 1.0), sr, codec, bitrate)
        else:
            subtype = "PCM_16" if ext == ".wav" else None
            sf.write(str(tmp), np.clip(arr, -1.0, 1.0).T, sr, subtype=subtype)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
