"""Opening media (a path or bytes) and decoding a stream of it, dropping corrupt packets (PyAV underneath)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av

MAX_BAD_PACKETS = 10  # corrupt packets dropped before a stream counts as ending there

MediaSource = str | Path | bytes | io.BytesIO  # a file, or a file's bytes (a shard member)


def open_input(source: MediaSource, **options) -> av.container.InputContainer:
    """An input container for a path or in-memory bytes; PyAV's errors pass through."""
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(source)
    return av.open(source if isinstance(source, io.BytesIO) else str(source), "r", **options)


def decoded(container: av.container.InputContainer, stream: av.stream.Stream) -> Iterator:
    """A stream's frames, dropping corrupt packets: a damaged or truncated file ends early, it does not raise."""
    errors = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError:
            errors += 1
            if errors > MAX_BAD_PACKETS:
                return
            continue
        yield from frames


def decoded_from(container: av.container.InputContainer, stream: av.stream.Stream, seconds: float) -> Iterator:
    """The stream's frames (corrupt packets dropped) from the last keyframe at or before ``seconds`` (container
    clock), or from the start. A demuxer that seeks by bytes (MPEG-TS) can land after the target: then it
    seeks again 1, 2, 4 ... s earlier, down to the start of the file.
    """
    back = 0.0
    while True:
        target = seconds - back
        if target > 0.5 and stream.time_base is not None:
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
        elif back:  # an earlier seek overshot: rewind (to 0, not to start_time: MPEG-TS overshoots that too)
            container.seek(min(0, stream.start_time or 0), stream=stream, backward=True)
        frames = decoded(container, stream)
        first = next(frames, None)
        if first is None or first.time is None or first.time <= seconds or target <= 0.5:
            if first is not None:
                yield first
            yield from frames
            return
        back = max(1.0, 2 * back)


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The video stream to read: the first one that moves (not cover art or a still image), else None."""
    still = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image
    return next((stream for stream in container.streams.video if not stream.disposition & still), None)


def quarter_turns(rotation: float | None) -> int:
    """A display rotation (degrees, counter-clockwise) rounded to 0, 90, 180 or 270: only those are meaningful."""
    return int(round((rotation or 0) / 90.0)) * 90 % 360
