"""Mux generated audio into a copy of the input video (video stream copied untouched, via PyAV)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from v2a.watermark.audio_io import AudioReadError, decode, resample

AUDIO_MODES = ("drop", "keep", "mix")


def _decode_first_audio(path: Path, sample_rate: int) -> np.ndarray | None:
    """The input's first audio track as mono float32 at ``sample_rate``, or None when it has none."""
    try:
        audio, rate = decode(path)
    except AudioReadError:
        return None
    return resample(audio.mean(axis=0), rate, sample_rate)


def mux_audio(video_path: str | Path, audio: np.ndarray, sample_rate: int, out_path: str | Path, *,
              original_audio: str = "drop", codec: str = "aac") -> Path:
    """Write ``out_path``: the input's video stream copied packet by packet, plus ``audio``.

    ``original_audio``: ``drop`` it, ``keep`` it as a second track, or ``mix`` it under the new audio.
    The file is written to a temporary name and renamed, so a failure leaves nothing half-written.
    """
    if original_audio not in AUDIO_MODES:
        raise ValueError(f"original_audio must be one of {AUDIO_MODES}, got {original_audio!r}")
    video_path, out_path = Path(video_path), Path(out_path)
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1, 1)
    original = _decode_first_audio(video_path, sample_rate) if original_audio != "drop" else None
    if original is not None and original_audio == "mix":
        n = min(len(original), len(audio))
        audio = audio.copy()
        audio[:n] = np.clip(0.5 * audio[:n] + 0.5 * original[:n], -1, 1)
        original = None
    tmp = out_path.with_name(f".{out_path.stem}.tmp{out_path.suffix}")
    try:
        with av.open(str(video_path)) as source, av.open(str(tmp), mode="w") as sink:
            in_video = source.streams.video[0]
            out_video = sink.add_stream_from_template(in_video)
            tracks = [audio] + ([original] if original is not None else [])
            out_audio = [sink.add_stream(codec, rate=sample_rate, layout="mono") for _ in tracks]
            for packet in source.demux(in_video):
                if packet.dts is None:
                    continue
                packet.stream = out_video
                sink.mux(packet)
            for stream, track in zip(out_audio, tracks, strict=True):
                _write_track(sink, stream, track, sample_rate)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def _write_track(sink, stream, track: np.ndarray, sample_rate: int, chunk: int = 1024) -> None:
    for start in range(0, len(track), chunk):
        piece = track[start : start + chunk]
        frame = av.AudioFrame.from_ndarray(piece[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            sink.mux(packet)
    for packet in stream.encode():
        sink.mux(packet)
