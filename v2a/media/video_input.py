"""Reading a user's video at the model's frame rate and resolution, window by window.

Frames come from the ingestion reader (``v2a.data.ingest``): the same probe, frame-time rule, display
rotation and centre-crop + area resize as ``data_prep``, so generation sees frames as training did.
Decoding is PyAV only (decord returns wrong frames on MPEG-TS and ignores rotation) and seek-based:
each batch of windows seeks to the keyframe before it and decodes forward, keeping only the frames it
needs at the model's resolution, so memory does not depend on the video's length or resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from v2a.media.probe import BadVideo, VideoInfo, probe
from v2a.media.reader import read_frames
from v2a.shapes import ClipSpec

# Same defaults as data_prep (v2a/conf/data_prep): a header above these is broken or not meant for us.
MAX_RESOLUTION = 8192
MAX_DURATION_S = 4 * 3600.0


class VideoInputError(ValueError):
    """A video that cannot be used: missing, unreadable, no video stream, zero length."""


@dataclass(frozen=True)
class VideoInput:
    """A probed, decodable video; frames are read lazily with :func:`read_windows`."""

    path: Path
    info: VideoInfo

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
        raise VideoInputError(f"{path}: not a file")
    try:
        info = probe(str(path), max_resolution=max_resolution, max_duration_s=max_duration_s)
    except BadVideo as error:
        raise VideoInputError(f"{path}: {error.reason} ({error.kind})") from None
    except OSError as error:
        raise VideoInputError(f"{path}: cannot read ({error})") from None
    return VideoInput(path=path, info=info)


def read_windows(video: VideoInput, starts: list[int], count: int, spec: ClipSpec) -> torch.Tensor:
    """``count`` frames on the model's grid from each start frame -> uint8 [len(starts), count, 3, S, S].

    Frame ``k`` is the picture on screen at ``k / spec.fps`` seconds after the first frame; past the end
    of the video the last frame is repeated (as data_prep does for a short final clip). One decoding
    pass serves every window of the batch (overlapping windows share their frames).
    """
    index = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(count)[None, :]
    wanted, inverse = np.unique(index, return_inverse=True)
    try:
        frames, _ = read_frames(str(video.path), wanted / spec.fps, origin=video.info.origin, size=spec.image_size,
                                rotation=video.info.rotation)
    except ValueError as error:  # the reader's "no decodable frame"
        raise VideoInputError(f"{video.path}: {error}") from None
    batch = torch.from_numpy(frames[inverse.reshape(index.shape)])  # [B, count, S, S, 3]
    return batch.permute(0, 1, 4, 2, 3).contiguous()
