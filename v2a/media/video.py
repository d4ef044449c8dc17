"""Every video decode: a user's or a source's video at given times, and a shard clip's frames (PyAV only).

Times are seconds after the video's first frame (``origin`` on the container clock), so video and audio
are cut from one clock. Frames are shown as a player shows them: display rotation applied, centre-cropped
to a square and scaled to the model's size inside ffmpeg (area, full chroma interpolation), so a 4K source
costs no full-resolution RGB copy. PyAV is the only decoder: decord and torchcodec returned wrong frames
after a seek in MPEG-TS, and with its RGB converter on one thread PyAV is as fast in the training loader
(docs/benchmarks.md, "Video decoders").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from v2a.media.container import MediaSource, decoded_from, open_input, quarter_turns, video_stream
from v2a.media.probe import BadVideo, VideoInfo, VideoScan, probe, scan_video
from v2a.shapes import ClipSpec

log = logging.getLogger(__name__)

EPS = 1e-4  # seconds: a frame stamped at t is on screen at t despite float rounding of timestamps
# Same defaults as data_prep (v2a/conf/data_prep): a header above these is broken or not meant for us.
MAX_RESOLUTION = 8192
MAX_DURATION_S = 4 * 3600.0


class VideoInputError(ValueError):
    """A video that cannot be used: missing, unreadable, no video stream, zero length."""


@dataclass(frozen=True)
class VideoInput:
    """A probed, decodable video file; frames are read lazily with :func:`read_frames` / :func:`read_windows`."""

    path: Path
    info: VideoInfo
    scan: VideoScan | None = None  # what the main video stream's packets hold

    @property
    def duration(self) -> float:
        return self.info.duration

    @property
    def fps(self) -> float:
        return self.info.fps


def open_video(path: str | Path, *, max_resolution: int = MAX_RESOLUTION,
               max_duration_s: float = MAX_DURATION_S) -> VideoInput:
    """Probe ``path`` (headers and one decoded frame); :class:`VideoInputError` says why it is unusable."""
    path = Path(path)
    if not path.exists():
        raise VideoInputError(f"{path}: no such file")
    if not path.is_file():
        kind = "folder" if path.is_dir() else "FIFO" if path.is_fifo() else "device or socket"
        raise VideoInputError(f"{path}: not a file (a {kind})")
    try:
        info = probe(str(path), max_resolution=max_resolution, max_duration_s=max_duration_s)
        scan = scan_video(path)
    except BadVideo as error:
        raise VideoInputError(f"{path}: {error.reason} ({error.kind})") from None
    except (OSError, av.FFmpegError) as error:
        raise VideoInputError(f"{path}: cannot read ({error})") from None
    if scan is not None and scan.end - info.origin > 0:
        # The packets are the truth: a truncated file keeps its header's duration, an AVI or MPEG-PS without an
        # index has it estimated from the bit rate. A copied stream holds exactly these packets.
        real = scan.end - info.origin
        if real < info.duration - 1.0 / info.fps:
            log.warning("%s: video data ends at %.2f s, its header says %.2f s (truncated?): using %.2f s",
                        path, real, info.duration, real)
        info = replace(info, duration=real)
    return VideoInput(path=path, info=info, scan=scan)


def square_resize(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, 3] already decoded -> [N, size, size, 3]: centre crop to a square, then area resize.

    Area interpolation averages the source pixels under each output pixel (no aliasing when shrinking;
    it equals nearest-neighbour when a small source is enlarged).
    """
    height, width = frames.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    frames = frames[:, top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(frames)
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    video = F.interpolate(video, size=(size, size), mode="area")
    return video.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _square_graph(frame: av.VideoFrame, rotation: int, size: int) -> av.filter.Graph:
    """An ffmpeg graph: the centre square of the picture as displayed -> area-scaled to ``size`` -> RGB.

    Scaling before the RGB conversion, with full chroma interpolation, is within ~1 grey level of an exact
    box average (swscale's default yuv -> scaled rgb path is ~12 levels off on textured video). The crop
    offsets are those of cropping after the display rotation (np.rot90 then ``(H - side) // 2``).
    """
    width, height = frame.width, frame.height
    side = min(width, height)
    ceil_x, ceil_y = rotation in (90, 180), rotation in (180, 270)
    x = (width - side + ceil_x) // 2
    y = (height - side + ceil_y) // 2
    graph = av.filter.Graph()
    graph.threads = 1  # one small picture at a time: a thread pool costs more than it saves
    chain = [
        graph.add_buffer(width=width, height=height, format=frame.format.name, time_base=frame.time_base or Fraction(1, 1000)),
        graph.add("crop", f"w={side}:h={side}:x={x}:y={y}:exact=1"),
        graph.add("scale", f"w={size}:h={size}:flags=area+accurate_rnd+full_chroma_int"),
        graph.add("format", "pix_fmts=rgb24"),
        graph.add("buffersink"),
    ]
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        upstream.link_to(downstream)
    graph.configure()
    return graph


def picture_reader(rotation: int, size: int | None) -> Callable[[av.VideoFrame], np.ndarray]:
    """frame -> upright uint8 [H, W, 3]; with ``size``, the centre square at [size, size, 3].

    A picture that needs scaling is cropped and scaled inside ffmpeg before the RGB conversion (a 4K
    source costs no full-size RGB copy, and no torch resize); the conversion runs on one thread (sws's
    default thread pool is created per call and costs more than converting a small frame).
    """
    graphs: dict[tuple[int, int, str], av.filter.Graph] = {}

    def read(frame: av.VideoFrame) -> np.ndarray:
        if size is not None and min(frame.width, frame.height) != size:
            key = (frame.width, frame.height, frame.format.name)
            if key not in graphs:
                graphs[key] = _square_graph(frame, rotation, size)
            graphs[key].push(frame)
            image = graphs[key].pull().to_ndarray()
        else:
            image = frame.to_ndarray(format="rgb24", threads=1)
        if rotation:  # the display matrix turns the picture counter-clockwise; np.rot90 does the same
            image = np.rot90(image, rotation // 90)
        if size is not None and image.shape[:2] != (size, size):  # the short side is already ``size``
            top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
            image = image[top : top + size, left : left + size]
        return np.ascontiguousarray(image)

    return read


def _threaded(stream: av.video.stream.VideoStream, threads: int) -> av.video.stream.VideoStream:
    """Decode on one thread, or on ``threads`` frame and slice threads (0: one per core)."""
    if threads != 1:
        stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    return stream


def read_frames(path: str | Path, times: np.ndarray, *, origin: float, size: int | None, rotation: int = 0,
                threads: int = 1) -> tuple[np.ndarray, float]:
    """The frame on screen at each of ``times`` (ascending), upright and at the model's size: uint8
    [len(times), size, size, 3] (``size=None``: at the picture's own size), and the time of the last frame
    the file really holds (a truncated file repeats it after that). Seeks to the keyframe before the first
    time (again earlier if the demuxer overshoots) and decodes forward; corrupt packets are dropped.
    ``threads`` other than 1 (0: one per core) turns on the decoder's frame and slice threads: slower on
    320x240 sources in docs/benchmarks.md, and worker pools already use every core.
    """
    out: list[np.ndarray | None] = [None] * len(times)
    picture = picture_reader(rotation, size)
    with open_input(path) as container:
        stream = video_stream(container)
        if stream is None:
            raise ValueError("no video stream")
        stream = _threaded(stream, threads)
        held: av.VideoFrame | None = None  # the latest frame at or before the next wanted time
        held_array: np.ndarray | None = None
        wanted = 0
        last_time = origin
        for frame in decoded_from(container, stream, origin + float(times[0]) + EPS):
            last_time = frame.time if frame.time is not None else last_time
            while wanted < len(times) and origin + times[wanted] + EPS < last_time:
                if held is None:  # wanted before the first decoded frame: show that frame
                    held, held_array = frame, None
                held_array = picture(held) if held_array is None else held_array
                out[wanted] = held_array
                wanted += 1
            if wanted == len(times):
                break
            held, held_array = frame, None
    if held is None:
        raise ValueError("no decodable frame")
    tail = picture(held) if held_array is None else held_array
    return np.stack([tail if frame is None else frame for frame in out]), last_time - origin


def read_windows(video: VideoInput, starts: list[int], count: int, spec: ClipSpec) -> torch.Tensor:
    """``count`` frames on the model's grid from each start frame -> uint8 [len(starts), count, 3, S, S].

    Frame ``k`` is the picture on screen at ``k / spec.fps`` seconds after the first frame; past the end
    of the video the last frame is repeated (as data_prep does for a short final clip). One decoding
    pass serves every window of the batch (overlapping windows share their frames), so memory does not
    depend on the video's length or resolution.
    """
    index = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(count)[None, :]
    wanted, inverse = np.unique(index, return_inverse=True)
    try:
        frames, _ = read_frames(video.path, wanted / spec.fps, origin=video.info.origin, size=spec.image_size,
                                rotation=video.info.rotation)
    except ValueError as error:  # the reader's "no decodable frame"
        raise VideoInputError(f"{video.path}: {error}") from None
    batch = torch.from_numpy(frames[inverse.reshape(index.shape)])  # [B, count, S, S, 3]
    return batch.permute(0, 1, 4, 2, 3).contiguous()


def decode_video(source: MediaSource) -> tuple[np.ndarray, float]:
    """Every frame of a short clip (a shard's mp4 bytes, or a file), upright at its own size:
    (uint8 [T, H, W, 3], fps). Raises ``ValueError`` (or PyAV's error) when nothing decodes."""
    with open_input(source) as container:
        stream = video_stream(container)
        if stream is None:
            raise ValueError("no video stream")
        stream = _threaded(stream, 1)
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        picture, frames = None, []
        for frame in container.decode(stream):
            picture = picture or picture_reader(quarter_turns(frame.rotation), None)
            frames.append(picture(frame))
    if not frames or fps <= 0:
        raise ValueError(f"no decodable frames (frames={len(frames)}, fps={fps})")
    return np.stack(frames), fps
