"""Reading a user's video at the model's frame rate and resolution."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from v2a.shapes import ClipSpec


class VideoInputError(ValueError):
    """A video that cannot be used: missing, unreadable, no video stream, zero length."""


@dataclass
class VideoInput:
    """A decodable video and its timing; frames are read lazily, window by window."""

    path: Path
    fps: float
    num_frames: int
    reader: object

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def open_video(path: str | Path, spec: ClipSpec) -> VideoInput:
    """Open ``path`` with decord, resizing at decode time to the model's square resolution."""
    import decord

    path = Path(path)
    if not path.is_file():
        raise VideoInputError(f"{path}: no such file")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), width=spec.image_size, height=spec.image_size,
                                    num_threads=1)
    except Exception as error:  # decord raises its own error types for every container problem
        raise VideoInputError(f"{path}: cannot decode a video stream ({str(error).splitlines()[0]})") from error
    fps, count = float(reader.get_avg_fps()), len(reader)
    if count < 1 or not np.isfinite(fps) or fps <= 0:
        raise VideoInputError(f"{path}: no usable frames (frames={count}, fps={fps})")
    return VideoInput(path=path, fps=fps, num_frames=count, reader=reader)


def read_window(video: VideoInput, start: float, spec: ClipSpec, n_frames: int) -> torch.Tensor:
    """``n_frames`` frames at the model fps from ``start`` seconds -> uint8 [n_frames, 3, S, S]."""
    times = start + np.arange(n_frames) / spec.fps
    indices = np.minimum((times * video.fps).astype(np.int64), video.num_frames - 1)
    frames = video.reader.get_batch(indices.tolist()).asnumpy()
    return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
