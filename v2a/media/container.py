"""Opening media (a path or bytes), choosing its main video stream, and decoding a stream of it, dropping
corrupt packets (PyAV underneath)."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import av

MAX_BAD_PACKETS = 10  # corrupt packets dropped before a stream counts as ending there
SAMPLE_PACKETS = 500  # packets demuxed to tell a film from a thumbnail track when headers cannot

MediaSource = str | Path | bytes | io.BytesIO  # a file, or a file's bytes (a shard member)

# File names taken as videos when a folder is read (generation and ingestion alike): whatever ffmpeg
# demuxes, archive formats included (DV, MXF, VOB, WMV/ASF, FLV, Ogg, RealMedia ...).
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .qt .mkv .webm .avi .divx .mpg .mpeg .m1v .m2v .mpv .vob .ts .mts .m2ts .tod .mod .wmv .asf "
    ".flv .f4v .3gp .3g2 .ogv .ogg .dv .dif .mxf .gxf .nut .rm .rmvb .y4m .ivf .gif .mjpeg .mjpg .h264 .hevc".split()
)


class NotAFile(OSError):
    """A path that is not a regular file (a FIFO, socket, device or folder): opening it could block forever."""


def open_input(source: MediaSource, **options) -> av.container.InputContainer:
    """An input container for a path or in-memory bytes; PyAV's errors pass through.

    A path that is not a regular file raises :class:`NotAFile` (an ``OSError``) instead of being opened:
    reading a FIFO blocks until someone writes to it.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(source)
    if isinstance(source, io.BytesIO):
        return av.open(source, "r", **options)
    try:
        mode = os.stat(source).st_mode
    except OSError:
        mode = None  # missing: PyAV says so in its own words
    if mode is not None and not stat.S_ISREG(mode):
        kind = "folder" if stat.S_ISDIR(mode) else "FIFO" if stat.S_ISFIFO(mode) else "device or socket"
        raise NotAFile(f"not a regular file (a {kind})")
    return av.open(str(source), "r", **options)


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
    """The main video stream, else None: never cover art or a still image; among several streams one that
    moves (a 1-frame thumbnail track loses to the film), then the largest picture, then the most frames.

    Headers give frame counts in mp4/mov; elsewhere (mkv, avi, ts) the first packets of the file are counted
    in a second handle, so the caller's read position is untouched.
    """
    still = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image
    moving = [stream for stream in container.streams.video if not stream.disposition & still]
    if len(moving) <= 1:
        return moving[0] if moving else None
    counts = {stream.index: stream.frames for stream in moving}
    if min(counts.values()) <= 0:  # some header does not say: count packets at the start of the file
        seen = _packets_at_start(container.name, [stream.index for stream in moving])
        counts = {index: max(count, seen.get(index, 0)) for index, count in counts.items()}
    return max(moving, key=lambda s: (counts[s.index] > 1, s.codec_context.width * s.codec_context.height,
                                      counts[s.index], -s.index))


def _packets_at_start(name: str, indices: list[int]) -> dict[int, int]:
    """Packets of each of the streams ``indices`` among the first :data:`SAMPLE_PACKETS` of file ``name``."""
    counts = dict.fromkeys(indices, 0)
    try:
        with open_input(name) as other:
            for number, packet in enumerate(other.demux([other.streams[i] for i in indices])):
                if number >= SAMPLE_PACKETS:
                    break
                if packet.size:
                    counts[packet.stream.index] += 1
    except (av.FFmpegError, OSError, ValueError, IndexError):
        pass  # not a file we can open twice (bytes): headers decide
    return counts


def quarter_turns(rotation: float | None) -> int:
    """A display rotation (degrees, counter-clockwise) rounded to 0, 90, 180 or 270: only those are meaningful."""
    return int(round((rotation or 0) / 90.0)) * 90 % 360
