"""Decode a source's frames (decord, PyAV where decord fails) and audio (PyAV) at given times.

All times are seconds after the video's first frame (``origin`` on the container clock), so video and
audio are cut from one clock and stay in sync whatever the container's start offsets or AAC priming.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

log = logging.getLogger(__name__)

EPS = 1e-4  # seconds: a frame stamped at t is on screen at t despite float rounding of timestamps
AUDIO_MARGIN = 0.1  # seconds decoded and resampled on each side, then cut: no seek or filter edge in the clip
CHUNK = 16  # frames decoded per batch before resizing: bounds memory for 4K sources
MAX_BAD_PACKETS = 10  # corrupt packets dropped before a stream counts as ending there


def square_resize(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, 3] -> [N, size, size, 3]: centre crop to a square, then area resize.

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


# decord returned wrong frames for MPEG-TS, failed on portrait and rotated videos in our tests: it is used
# only for the containers where it matched PyAV frame for frame, and its output shape is checked.
DECORD_CONTAINERS = ("mp4", "matroska")


def use_decord(container: str, rotation: int) -> bool:
    """Whether decord may read this video (else PyAV reads it)."""
    return rotation == 0 and any(name in container.split(",") for name in DECORD_CONTAINERS)


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


def read_frames(
    path: str, times: np.ndarray, *, origin: float, size: int, rotation: int = 0, shape: tuple[int, int] | None = None,
    decord_ok: bool = False,
) -> tuple[np.ndarray, float]:
    """The frame on screen at each of ``times`` (ascending), upright and resized: uint8 [len(times), size, size, 3],
    and the time of the last frame the file really holds (a truncated file repeats it after that).

    ``shape`` is the probed (height, width); decord is tried first when ``decord_ok``, PyAV otherwise or
    when decord fails or returns frames of another shape.
    """
    if decord_ok:
        import decord  # lazily: heavy, and only this path needs it

        try:
            return _frames_decord(decord, path, times, size, shape)
        except (decord.DECORDError, RuntimeError, IndexError) as error:
            log.debug("decord failed on %s (%s): PyAV instead", path, error)
    return _frames_pyav(path, times, origin=origin, size=size, rotation=rotation)


def _frames_decord(
    decord, path: str, times: np.ndarray, size: int, shape: tuple[int, int] | None
) -> tuple[np.ndarray, float]:
    video = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    count = len(video)
    if count == 0:
        raise RuntimeError("no frames")
    stamps = video.get_frame_timestamp(np.arange(count))[:, 0]
    stamps = stamps - stamps[0]  # decord's stamps start at the first frame: the same clock as ``times``
    index = np.clip(np.searchsorted(stamps, times + EPS, side="right") - 1, 0, count - 1)
    wanted, inverse = np.unique(index, return_inverse=True)
    chunks = []
    for i in range(0, len(wanted), CHUNK):
        batch = video.get_batch(wanted[i : i + CHUNK].tolist()).asnumpy()
        if batch.ndim != 4 or batch.shape[-1] != 3 or (shape is not None and batch.shape[1:3] != tuple(shape)):
            raise RuntimeError(f"decord returned frames of shape {batch.shape[1:]}, expected {shape}")
        chunks.append(square_resize(batch, size))
    return np.concatenate(chunks)[inverse], float(stamps[-1])


def _frames_pyav(path: str, times: np.ndarray, *, origin: float, size: int, rotation: int) -> tuple[np.ndarray, float]:
    out: list[np.ndarray | None] = [None] * len(times)

    def array_of(frame: av.VideoFrame) -> np.ndarray:
        image = frame.to_ndarray(format="rgb24")
        if rotation:  # the display matrix turns the picture counter-clockwise; np.rot90 does the same
            image = np.rot90(image, rotation // 90)
        return square_resize(image[None], size)[0]

    with av.open(path) as container:
        stream = container.streams.video[0]
        first = origin + float(times[0])
        if first > 0.5 and stream.time_base is not None:  # from the keyframe before the first time wanted
            container.seek(int(first / stream.time_base), stream=stream, backward=True)
        held: av.VideoFrame | None = None  # the latest frame at or before the next wanted time
        held_array: np.ndarray | None = None
        wanted = 0
        last_time = origin
        for frame in decoded(container, stream):
            last_time = frame.time if frame.time is not None else last_time
            while wanted < len(times) and origin + times[wanted] + EPS < last_time:
                if held is None:  # wanted before the first decoded frame: show that frame
                    held, held_array = frame, None
                held_array = array_of(held) if held_array is None else held_array
                out[wanted] = held_array
                wanted += 1
            if wanted == len(times):
                break
            held, held_array = frame, None
    if held is None:
        raise ValueError("no decodable frame")
    tail = array_of(held) if held_array is None else held_array
    return np.stack([tail if frame is None else frame for frame in out]), last_time - origin


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """Any sample format / layout -> mono float32 in [-1, 1]."""
    data = frame.to_ndarray()
    if not frame.format.is_planar:  # packed: [1, samples * channels]
        data = data.reshape(-1, max(1, len(frame.layout.channels))).T
    if data.dtype.kind == "u":
        data = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        data = data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    return data.astype(np.float32).mean(axis=0)


def read_audio(path: str, begin: float, end: float, *, origin: float, rate: int) -> np.ndarray:
    """Mono float32 at ``rate`` for [begin, end) seconds after the first video frame.

    Each decoded frame is placed by its timestamp, so gaps, late starts and seek overshoot become silence
    at the right place instead of shifting the sound. Corrupt packets are dropped (silence there).
    """
    with av.open(path) as container:
        stream = container.streams.audio[0]
        source_rate = stream.codec_context.sample_rate
        low, high = origin + begin - AUDIO_MARGIN, origin + end + AUDIO_MARGIN
        buffer = np.zeros(int(round((high - low) * source_rate)), dtype=np.float32)
        if low > 0.5 and stream.time_base is not None:
            container.seek(int(low / stream.time_base), stream=stream, backward=True)
        cursor = None
        for frame in decoded(container, stream):
            start = frame.time if frame.time is not None else (cursor if cursor is not None else origin)
            samples = _mono(frame)
            cursor = start + len(samples) / source_rate
            offset = int(round((start - low) * source_rate))
            if offset >= len(buffer):
                break
            skip = max(0, -offset)
            piece = samples[skip : len(buffer) - offset]
            buffer[offset + skip : offset + skip + len(piece)] = piece
    audio = AF.resample(torch.from_numpy(buffer), source_rate, rate).numpy() if source_rate != rate else buffer
    first = int(round(AUDIO_MARGIN * rate))
    length = int(round((end - begin) * rate))
    clip = audio[first : first + length]
    return np.pad(clip, (0, length - len(clip))).astype(np.float32)
