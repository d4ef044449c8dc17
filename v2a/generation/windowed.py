"""Windowed generation: fixed-length windows with overlap, crossfaded in mel space.

Memory is linear in the video length: the denoiser only ever sees one window, and windows are
generated in small batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from v2a.shapes import ClipSpec


def window_starts(n_video_frames: int, window_frames: int, overlap_frames: int) -> list[int]:
    """Start frames of windows covering ``n_video_frames`` (last window ends at the end)."""
    if window_frames <= overlap_frames:
        raise ValueError(f"window ({window_frames} frames) must be longer than the overlap ({overlap_frames})")
    if n_video_frames <= window_frames:
        return [0]
    stride = window_frames - overlap_frames
    count = math.ceil((n_video_frames - window_frames) / stride) + 1
    starts = [i * stride for i in range(count)]
    starts[-1] = n_video_frames - window_frames
    return starts


def crossfade_join(windows: list[torch.Tensor], starts: list[int], total: int) -> torch.Tensor:
    """Overlap-add mel windows [C, F] placed at mel-frame ``starts`` with linear crossfade weights."""
    channels, length = windows[0].shape
    out = torch.zeros(channels, total)
    weight = torch.zeros(total)
    ramp_len = max(1, length // 4)
    for window, start in zip(windows, starts, strict=True):
        w = torch.ones(length)
        if start > 0:
            w[:ramp_len] = torch.linspace(0, 1, ramp_len + 2)[1:-1]
        if start + length < total:
            w[-ramp_len:] = torch.linspace(1, 0, ramp_len + 2)[1:-1]
        end = min(total, start + length)
        out[:, start:end] += window[:, : end - start] * w[: end - start]
        weight[start:end] += w[: end - start]
    return out / weight.clamp_min(1e-6)


def generate_long(read_frames: Callable[[int, int], torch.Tensor], n_video_frames: int, spec: ClipSpec,
                  generate_mel: Callable[[torch.Tensor], torch.Tensor], *, overlap_s: float = 0.5,
                  batch_windows: int = 8, progress: Callable | None = None) -> torch.Tensor:
    """Mel [n_mels, F] for a video of ``n_video_frames`` frames at the model fps.

    ``read_frames(start, count)`` returns uint8 frames [count, 3, S, S]; ``generate_mel`` maps a batch
    of windows [B, T, 3, S, S] to mels [B, n_mels, F_window].
    """
    window = spec.n_video_frames
    mel_per_frame = spec.tokens_per_video_frame * spec.mel_frames_per_token
    if n_video_frames < window:  # shorter than one window: generate a whole window, then trim
        frames = read_frames(0, window)
        return generate_mel(frames[None])[0][:, : n_video_frames * mel_per_frame]
    starts = window_starts(n_video_frames, window, round(overlap_s * spec.fps))
    mels: list[torch.Tensor] = []
    for first in range(0, len(starts), batch_windows):
        chunk = starts[first : first + batch_windows]
        batch = torch.stack([read_frames(s, window) for s in chunk])
        mels += list(generate_mel(batch).cpu())
        if progress is not None:
            progress(len(chunk))
    return crossfade_join(mels, [s * mel_per_frame for s in starts], n_video_frames * mel_per_frame)
