"""Small real videos made on the fly with PyAV, with a known picture per frame and known clicks."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frame_value(index: int) -> int:
    """The grey level of source frame ``index``: frames can be identified after decoding (+-8 levels per frame)."""
    return (16 + 8 * index) % 240


def make_video(
    path: Path, *, size: tuple[int, int] = (64, 48), fps: int = 30, seconds: float = 2.0, audio: str | None = "aac",
    rate: int = 44100, clicks: tuple[float, ...] = (), vcodec: str = "libx264", fmt: str | None = None,
    rotation: int = 0, options: dict | None = None, preset: str = "ultrafast",
) -> Path:
    """Write a video whose frame i is uniformly ``frame_value(i)`` (a white square top-left) and whose
    audio is silence with a short click at each time in ``clicks``; returns ``path``."""
    width, height = size
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        video = container.add_stream(vcodec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if vcodec == "libx264":
            video.options = {"preset": preset}
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = container.add_stream(audio, rate=rate)
            sound.layout = "stereo" if audio == "aac" else "mono"
        for index in range(int(round(seconds * fps))):
            image = np.full((height, width, 3), frame_value(index), np.uint8)
            image[:4, :4] = 255
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            _write_audio(container, sound, rate, seconds, clicks)
    return path


def _write_audio(container, sound, rate: int, seconds: float, clicks: tuple[float, ...]) -> None:
    signal = np.zeros(int(seconds * rate), np.float32)
    for time in clicks:
        start = int(time * rate)
        signal[start : start + 24] = 0.8
    channels = sound.layout.nb_channels
    size = sound.frame_size or 1024
    for first in range(0, len(signal), size):
        chunk = np.tile(signal[first : first + size], (channels, 1))
        if sound.format.name == "fltp":
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=sound.layout.name)
        else:  # packed 16-bit (pcm_s16le)
            packed = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=sound.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = rate, first, Fraction(1, rate)
        for packet in sound.encode(frame):
            container.mux(packet)
    for packet in sound.encode():
        container.mux(packet)


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An mp4 holding only an AAC track."""
    with av.open(str(path), "w", format="mp4") as container:
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
        _write_audio(container, sound, 16000, seconds, (0.5,))
    return path
