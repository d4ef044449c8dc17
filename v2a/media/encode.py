"""Encode a clip for a shard: H.264 mp4 video (PyAV) and FLAC audio (decoded by ``video`` / ``audio_io``)."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import soundfile as sf


def encode_mp4(frames: np.ndarray, fps: int, *, crf: int = 18) -> bytes:
    """uint8 frames [T, H, W, 3] -> H.264 mp4 bytes (yuv444p keeps the colours of tiny frames).

    Byte-deterministic: x264 runs on one thread, since its threaded encoder now and then wrote the same
    frames a byte apart between processes (CI saw a rebuilt shard's checksum differ), and shard checksums
    are how a resumed ingest proves it rebuilt the same data. Clips are small, so one thread costs little.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        for frame in frames:
            if frame.shape[:2] != (stream.height, stream.width):
                frame = np.pad(frame, ((0, stream.height - height), (0, stream.width - width), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float audio in [-1, 1] -> 16-bit FLAC bytes."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1, 1), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()
