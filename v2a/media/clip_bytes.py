"""Encode and decode the media stored in shards: H.264 mp4 video (PyAV / decord) and FLAC audio."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


def encode_mp4(frames: np.ndarray, fps: int, *, crf: int = 18) -> bytes:
    """uint8 frames [T, H, W, 3] -> H.264 mp4 bytes (yuv444p keeps the colours of tiny frames).

    Not byte-deterministic: the same frames occasionally encode to bitstreams a byte apart between
    processes, so shard identity is checked on keys, audio and metadata, not on tar checksums.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            if frame.shape[:2] != (stream.height, stream.width):
                frame = np.pad(frame, ((0, stream.height - height), (0, stream.width - width), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def decode_mp4(data: bytes, *, num_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Video bytes -> (uint8 frames [T, H, W, 3], fps): decord, with PyAV where decord cannot.

    decord fails on some frame sizes (row alignment) and containers; PyAV decodes anything ffmpeg does.
    """
    import decord  # imported lazily: decord is heavy and only the loaders need it

    try:
        reader = decord.VideoReader(io.BytesIO(data), ctx=decord.cpu(0), num_threads=1)
        count = len(reader) if num_frames is None else min(num_frames, len(reader))
        frames = reader.get_batch(list(range(count))).asnumpy()
        return frames, float(reader.get_avg_fps())
    except decord.DECORDError:
        return decode_video_pyav(data, num_frames=num_frames)


def decode_video_pyav(data: bytes, *, num_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Video bytes -> (uint8 frames [T, H, W, 3], fps) with PyAV."""
    with av.open(io.BytesIO(data)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if num_frames is not None and len(frames) >= num_frames:
                break
    if not frames or fps <= 0:
        raise ValueError(f"no decodable frames (frames={len(frames)}, fps={fps})")
    return np.stack(frames), fps


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float audio in [-1, 1] -> 16-bit FLAC bytes."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1, 1), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_audio(data: bytes, target_rate: int) -> np.ndarray:
    """FLAC/WAV bytes -> mono float32 at ``target_rate`` (resampled with torchaudio if needed)."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != target_rate:
        audio = AF.resample(torch.from_numpy(audio), rate, target_rate).numpy()
    return audio.astype(np.float32)
