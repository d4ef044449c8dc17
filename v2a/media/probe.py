"""Probe a video with PyAV (headers plus one decoded frame): cheap, and it rejects bad input early.

Rejections raise :class:`BadVideo` with a ``kind`` for ``index.json``; nothing here decodes more than a
frame, so the plan for thousands of files is made in seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av

from v2a.media.container import open_input, quarter_turns, video_stream

MAX_FPS = 1000.0  # anything faster is a broken header, not a video
GUESSED_DURATION = frozenset({"mpeg", "mpegts", "mpegvideo", "h264", "hevc", "m4v"})  # demuxers that estimate


class BadVideo(Exception):
    """Why a file cannot be used; ``kind`` is the short code counted in ``index.json``."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(kind, reason)  # both in args: the exception pickles back from a worker
        self.kind, self.reason = kind, reason

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class VideoInfo:
    duration: float  # seconds of video, from the first frame
    fps: float
    width: int
    height: int
    origin: float  # presentation time of the first video frame (audio is read on the same clock)
    has_audio: bool
    audio_rate: int
    rotation: int = 0  # display rotation, degrees counter-clockwise (phone videos: 90 or 270)
    container: str = ""  # demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "mpegts"


def frame_rate(stream) -> float:
    """Frames per second: the first plausible of the average, guessed, codec and base rates, else 0.

    A raw DV file reports its time base (60000) as average rate; the guessed rate says 25.
    """
    for rate in (stream.average_rate, stream.guessed_rate, stream.codec_context.framerate, stream.base_rate):
        if rate and 0 < float(rate) <= MAX_FPS:
            return float(rate)
    return 0.0


@dataclass(frozen=True)
class VideoScan:
    """What the packets of the main video stream really hold (headers can be wrong or truncated)."""

    start: float  # earliest presentation time, container clock
    end: float  # latest presentation time plus that packet's duration
    packets: int  # non-empty packets
    keyframes: int
    codec: str  # the codec's canonical name (``av1``, not the decoder's ``libdav1d``)
    fps: float


def scan_video(path: str | Path) -> VideoScan | None:
    """Demux (never decode) the main video stream of ``path``: its real extent and packet counts, or None
    when no packet has a time. Reads the whole file, so it is for one user video, not for planning thousands."""
    with open_input(path, metadata_errors="ignore") as container:
        stream = video_stream(container)
        if stream is None:
            return None
        fps = frame_rate(stream) or 25.0
        step = 1.0 / fps
        start = end = None
        packets = keyframes = 0
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                packets += 1
                keyframes += bool(packet.is_keyframe)
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None or packet.time_base is None:
                    continue
                begin = float(stamp * packet.time_base)
                stop = begin + (float(packet.duration * packet.time_base) if packet.duration else step)
                start = begin if start is None else min(start, begin)
                end = stop if end is None else max(end, stop)
        except av.FFmpegError:
            pass  # a damaged tail: what was read so far is what a copy can hold
        if start is None:
            return None
        return VideoScan(start, end, packets, keyframes, stream.codec_context.codec.canonical_name, fps)


def _seconds(value: int | None, time_base) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def _duration(container, stream, origin: float) -> float | None:
    """Video duration from the stream, else the container, else by demuxing packet timestamps (always for
    MPEG program and transport streams, whose header durations are guesses from the bit rate or the ends of
    the file: a 1 s VOB can claim 0.04 s)."""
    if container.format.name not in GUESSED_DURATION:
        duration = _seconds(stream.duration, stream.time_base)
        if duration:
            return duration
        if container.duration:
            start = container.start_time / av.time_base if container.start_time is not None else origin
            return container.duration / av.time_base - max(0.0, origin - start)
    end = None
    for packet in container.demux(stream):  # headers without a duration (some avi/ts): read packet times
        if packet.pts is not None:
            stop = float((packet.pts + (packet.duration or 0)) * stream.time_base)
            end = stop if end is None else max(end, stop)
    return None if end is None else end - origin


def probe(path: str | Path, *, max_resolution: int, max_duration_s: float) -> VideoInfo:
    """Stream facts of a video file, or :class:`BadVideo` saying why it cannot be used."""
    if os.path.getsize(path) == 0:
        raise BadVideo("empty", "empty file (0 bytes)")
    try:
        container = open_input(path, metadata_errors="ignore")
    except av.FFmpegError as error:
        raise BadVideo("unreadable", f"not a readable media file ({error.strerror or error})") from None
    except (OSError, UnicodeError, ValueError) as error:
        raise BadVideo("unreadable", f"cannot open: {error}") from None
    with container:
        try:
            return _probe_open(container, max_resolution=max_resolution, max_duration_s=max_duration_s)
        except BadVideo:
            raise
        except (av.FFmpegError, OSError, ValueError, ZeroDivisionError, OverflowError) as error:
            raise BadVideo("unreadable", f"cannot read the video stream ({error})") from None


def _probe_open(container, *, max_resolution: int, max_duration_s: float) -> VideoInfo:
    stream = video_stream(container)
    if stream is None:
        kind = "audio-only file" if container.streams.audio else "no streams"
        raise BadVideo("no_video", f"no video stream ({kind})")
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise BadVideo("unreadable", f"video stream has no frame size ({width}x{height})")
    if max(width, height) > max_resolution:
        raise BadVideo("too_large", f"resolution {width}x{height} above max_resolution={max_resolution}")
    fps = frame_rate(stream)
    if not 0 < fps <= MAX_FPS:
        raise BadVideo("bad_fps", f"frame rate {fps:g} fps is not usable")
    try:
        first = next(container.decode(stream), None)
    except av.FFmpegError as error:
        first, why = None, f" ({error.strerror or error})"
    else:
        why = ""
    if first is None:
        raise BadVideo("undecodable", f"no decodable frame in the {stream.codec_context.name} stream{why}")
    origin = _seconds(stream.start_time, stream.time_base)
    origin = first.time if origin is None and first.time is not None else origin or 0.0
    duration = _duration(container, stream, origin)  # after the first frame: demuxing goes on from there
    if duration is None or duration <= 0:
        raise BadVideo("empty", "zero-length video")
    if duration > max_duration_s:
        raise BadVideo("too_long", f"duration {duration:.1f} s above max_duration_s={max_duration_s:g}")
    audio = container.streams.audio[0] if container.streams.audio else None
    audio_rate = int(audio.codec_context.sample_rate or 0) if audio is not None else 0
    rotation = quarter_turns(first.rotation)
    return VideoInfo(duration, fps, width, height, origin, audio_rate > 0, audio_rate, rotation, container.format.name)
