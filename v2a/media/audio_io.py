"""Audio decoding, resampling, writing and in-memory codec round trips (PyAV + torchaudio).

One decoding path for every audio read: :func:`decode_audio` (any container, a path or its bytes) ->
``[channels, samples]`` float32 at the file's rate; :func:`decode_mono` makes that mono at a target rate
with the one :func:`resample`; :func:`read_audio` cuts a window of a video's sound on the video's clock.
Callers (loaders, ingestion, the watermark, the muxer) never have to care which container or sample
format a file used.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from v2a.media.container import MediaSource, decoded_from, open_input

AUDIO_MARGIN = 0.1  # seconds decoded and resampled on each side of a window, then cut: no seek or filter edge


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


def frame_samples(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame, any sample format or layout -> float32 ``[channels, samples]`` in [-1, 1]."""
    data = frame.to_ndarray()
    if not frame.format.is_planar:  # packed: [1, samples * channels]
        data = data.reshape(-1, max(1, len(frame.layout.channels))).T
    if data.dtype.kind == "u":
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype.kind == "i":
        return data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    return data.astype(np.float32, copy=False)


def _open_audio(source: MediaSource) -> av.container.InputContainer:
    try:
        return open_input(source)
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, av.FFmpegError) and exc.strerror else exc
        raise AudioReadError(f"cannot open: {reason}") from None


def decode_audio(source: MediaSource) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any container PyAV opens (a path or the file's bytes).

    Returns ``([channels, samples] float32, sample_rate)``. Raises ``AudioReadError`` with a
    one-line message for unreadable files or files without audio.
    """
    with _open_audio(source) as container:
        streams = container.streams.audio
        if not streams:
            raise AudioReadError("no audio stream")
        stream = streams[0]
        rate = stream.codec_context.sample_rate or stream.rate
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                rate = frame.sample_rate
                chunks.append(frame_samples(frame))
        except av.FFmpegError as exc:
            raise AudioReadError(f"decode failed: {exc}") from None
    if not chunks or not sum(chunk.shape[1] for chunk in chunks):
        raise AudioReadError("audio stream holds no samples")
    return np.concatenate(chunks, axis=1), int(rate)


def decode_mono(source: MediaSource, rate: int) -> np.ndarray:
    """Any audio file or its bytes (FLAC, WAV, AAC, a video's sound, ...) -> mono float32 ``[samples]`` at ``rate``."""
    audio, source_rate = decode_audio(source)
    return resample(to_mono(audio), source_rate, rate)


def read_audio(path: str | Path, begin: float, end: float, *, origin: float, rate: int) -> np.ndarray:
    """Mono float32 at ``rate`` for [begin, end) seconds after a video's first frame (``origin`` on its clock).

    Each decoded frame is placed by its timestamp, so gaps, late starts and seek overshoot become silence
    at the right place instead of shifting the sound. Corrupt packets are dropped (silence there).
    """
    with open_input(path) as container:
        stream = container.streams.audio[0]
        source_rate = stream.codec_context.sample_rate
        low, high = origin + begin - AUDIO_MARGIN, origin + end + AUDIO_MARGIN
        buffer = np.zeros(int(round((high - low) * source_rate)), dtype=np.float32)
        cursor = None
        for frame in decoded_from(container, stream, low):
            start = frame.time if frame.time is not None else (cursor if cursor is not None else origin)
            samples = to_mono(frame_samples(frame))
            cursor = start + len(samples) / source_rate
            offset = int(round((start - low) * source_rate))
            if offset >= len(buffer):
                break
            skip = max(0, -offset)
            piece = samples[skip : len(buffer) - offset]
            buffer[offset + skip : offset + skip + len(piece)] = piece
    audio = resample(buffer, source_rate, rate)
    first = int(round(AUDIO_MARGIN * rate))
    length = int(round((end - begin) * rate))
    clip = audio[first : first + length]
    return np.pad(clip, (0, length - len(clip))).astype(np.float32)


def audio_blocks(source: MediaSource | np.ndarray, block: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``block`` samples (the last one shorter) of an array, or of a file decoded lazily."""
    if isinstance(source, np.ndarray):
        for start in range(0, len(source), block):
            yield np.asarray(source[start : start + block], dtype=np.float32)
        return
    with _open_audio(source) as container:
        if not container.streams.audio:
            raise AudioReadError("no audio stream")
        pending = np.zeros(0, dtype=np.float32)
        for frame in container.decode(container.streams.audio[0]):
            pending = np.concatenate([pending, to_mono(frame_samples(frame))])
            while len(pending) >= block:
                yield pending[:block]
                pending = pending[block:]
        if len(pending):
            yield pending


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
    out, out_sr = decode_audio(buf.getvalue())
    return (out.mean(axis=0) if mono else out), out_sr


# Output formats by extension: soundfile handles lossless ones, PyAV the lossy ones.
_PYAV_WRITERS = {".mp3": ("libmp3lame", "mp3"), ".m4a": ("aac", "ipod"), ".aac": ("aac", "adts"),
                 ".opus": ("libopus", "ogg")}


def write_audio(path: str | Path, audio: np.ndarray, sr: int, bitrate: int = 192_000) -> Path:
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
            sf.write(os.fsencode(tmp), np.clip(arr, -1.0, 1.0).T, sr, subtype=subtype,  # bytes: any file name
                     format=ext.lstrip(".").upper())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
