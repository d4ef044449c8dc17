"""AV-Align (Yariv et al., 2024): agreement of audio onsets with motion peaks of the video.

Needs no learned model, so it scores any real clip. The original uses optical-flow magnitude; here the
motion curve is the mean absolute frame difference (no extra dependency; on the benchmark's moving
objects both peak when an object moves fastest, i.e. at impacts), and audio peaks come from the same
calibrated onset detector as the onset metrics.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import find_peaks

from v2a.evaluation.onsets import match_onsets


def motion_curve(frames: torch.Tensor) -> np.ndarray:
    """uint8 frames [T, 3, H, W] -> motion [T]: mean absolute grey-level change into each frame (0 at t=0)."""
    grey = frames.float().mean(dim=1) / 255.0
    diff = (grey[1:] - grey[:-1]).abs().mean(dim=(1, 2))
    return np.concatenate([[0.0], diff.cpu().numpy()])


def motion_peaks(frames: torch.Tensor, fps: float, rel_height: float = 0.1) -> np.ndarray:
    """Times (s) of local maxima of the motion curve above ``rel_height`` of its maximum."""
    curve = motion_curve(frames)
    if curve.max() <= 0:
        return np.zeros(0)
    peaks, _ = find_peaks(curve, height=rel_height * curve.max())
    return peaks / fps


def av_align(audio_peaks: np.ndarray, video_peaks: np.ndarray, fps: float) -> float:
    """Intersection over union of audio and video peaks: an audio peak and a video peak are shared when they
    lie within one frame of each other, matched one-to-one (the original counts every audio peak near any
    video peak, which can exceed 1). NaN when neither has a peak (nothing to agree on)."""
    if len(audio_peaks) == 0 and len(video_peaks) == 0:
        return float("nan")
    shared = len(match_onsets(np.asarray(audio_peaks), np.asarray(video_peaks), 1.0 / fps))
    return shared / (len(audio_peaks) + len(video_peaks) - shared)
