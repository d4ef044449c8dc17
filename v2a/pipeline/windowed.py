"""Windowed generation: fixed-length windows with overlap, crossfaded in mel space, streamed.

The denoiser only ever sees one window (the training clip length), windows are generated a few at a
time, and the joined mel is handed on piece by piece as soon as no later window can change it: memory
does not grow with the video's length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from v2a.shapes import ClipSpec


def window_starts(n_video_frames: int, window_frames: int, overlap_frames: int) -> list[int]:
    """Start frames of windows covering ``n_video_frames`` (last window ends at the end)."""
    if window_frames <= overlap_frames:
        raise ValueError(f"window ({window_frames} frames) must be longer than the overlap ({overlap_frames})")
    if overlap_frames < 0:
        raise ValueError(f"overlap must be >= 0 frames, got {overlap_frames}")
    if n_video_frames <= window_frames:
        return [0]
    stride = window_frames - overlap_frames
    count = math.ceil((n_video_frames - window_frames) / stride) + 1
    starts = [i * stride for i in range(count)]
    starts[-1] = n_video_frames - window_frames
    return starts


def window_weights(length: int, start: int, total: int, ramp: int) -> torch.Tensor:
    """Crossfade weights of one window: linear ramps where it meets a neighbour, 1 elsewhere."""
    w = torch.ones(length)
    ramp = max(1, min(ramp, length // 2))
    if start > 0:
        w[:ramp] = torch.linspace(0, 1, ramp + 2)[1:-1]
    if start + length < total:
        w[-ramp:] = torch.linspace(1, 0, ramp + 2)[1:-1]
    return w


def crossfade_join(windows: list[torch.Tensor], starts: list[int], total: int, ramp: int | None = None) -> torch.Tensor:
    """Overlap-add mel windows [C, F] placed at mel-frame ``starts`` with linear crossfade weights."""
    return torch.cat(list(_stream_join(iter(zip(windows, starts, strict=True)), total, ramp)), dim=1)


def _stream_join(placed: Iterator[tuple[torch.Tensor, int]], total: int, ramp: int | None) -> Iterator[torch.Tensor]:
    """Overlap-add windows arriving in order of start; yield each stretch once no later window reaches it.

    A window never reaches before its own start, so everything before the latest start is final.
    """
    acc: torch.Tensor | None = None  # weighted sum over [base, base + acc width)
    weight = torch.zeros(0)
    base = 0
    for window, start in placed:
        channels, length = window.shape
        if acc is None:
            acc = torch.zeros(channels, 0)
        if start > base:  # final up to here
            done = min(start, base + acc.shape[1]) - base
            yield acc[:, :done] / weight[:done].clamp_min(1e-6)
            acc, weight, base = acc[:, done:], weight[done:], base + done
        end = min(total, start + length)
        if end - base > acc.shape[1]:
            grow = end - base - acc.shape[1]
            acc = torch.cat([acc, torch.zeros(channels, grow)], dim=1)
            weight = torch.cat([weight, torch.zeros(grow)])
        w = window_weights(length, start, total, length // 4 if ramp is None else ramp)[: end - start]
        acc[:, start - base : end - base] += window[:, : end - start].float() * w
        weight[start - base : end - base] += w
    if acc is not None and acc.shape[1]:
        yield acc / weight.clamp_min(1e-6)


def stream_mel(read_windows: Callable[[list[int], int], torch.Tensor], n_video_frames: int, spec: ClipSpec,
               generate_mel: Callable[[torch.Tensor, list[int]], torch.Tensor], *, overlap_s: float = 0.5,
               batch_windows: int = 8, progress: Callable[[int], object] | None = None) -> Iterator[torch.Tensor]:
    """Consecutive pieces of the mel [n_mels, f] for a video of ``n_video_frames`` frames at the model fps.

    ``read_windows(starts, count)`` returns uint8 frames [len(starts), count, 3, S, S]; ``generate_mel``
    maps a batch of windows [B, T, 3, S, S] and their start frames to mels [B, n_mels, F_window]. The
    pieces, concatenated, hold ``n_video_frames * mel frames per video frame`` frames.
    """
    window = spec.n_video_frames
    mel_per_frame = spec.mel_frames_per_video_frame
    if n_video_frames < window:  # shorter than one window: generate a whole window, then trim
        yield generate_mel(read_windows([0], window), [0])[0, :, : n_video_frames * mel_per_frame].cpu().float()
        if progress is not None:
            progress(1)
        return
    overlap = round(overlap_s * spec.fps)
    starts = window_starts(n_video_frames, window, overlap)

    def placed() -> Iterator[tuple[torch.Tensor, int]]:
        for first in range(0, len(starts), batch_windows):
            chunk = starts[first : first + batch_windows]
            for mel, start in zip(generate_mel(read_windows(chunk, window), chunk).cpu(), chunk, strict=True):
                yield mel, start * mel_per_frame
            if progress is not None:
                progress(len(chunk))

    yield from _stream_join(placed(), n_video_frames * mel_per_frame, max(1, overlap * mel_per_frame))


def generate_long(read_windows: Callable[[list[int], int], torch.Tensor], n_video_frames: int, spec: ClipSpec,
                  generate_mel: Callable[[torch.Tensor, list[int]], torch.Tensor], **kwargs) -> torch.Tensor:
    """The whole mel [n_mels, F] at once (:func:`stream_mel` joined): for short videos and tests."""
    return torch.cat(list(stream_mel(read_windows, n_video_frames, spec, generate_mel, **kwargs)), dim=1)
