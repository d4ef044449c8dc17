"""Turn a raw webdataset sample into fixed-size tensors on the clip grid."""

from __future__ import annotations

import json
import logging

import numpy as np
import torch
import torch.nn.functional as F

from v2a.data.media import decode_audio, decode_mp4
from v2a.shapes import ClipSpec

log = logging.getLogger(__name__)

VIDEO_KEYS = ("mp4", "frames.npy")
AUDIO_KEYS = ("flac", "wav")


def fit_length(array: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad (video: repeat the last frame) along axis 0 to ``length``."""
    if len(array) >= length:
        return array[:length]
    if len(array) == 0:
        raise ValueError("empty stream")
    pad = [(0, length - len(array))] + [(0, 0)] * (array.ndim - 1)
    return np.pad(array, pad, mode="edge" if array.ndim > 1 else "constant")


def frames_to_tensor(frames: np.ndarray, spec: ClipSpec) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, 3, S, S] at the spec's resolution (area resize)."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if video.shape[-2:] != (spec.image_size, spec.image_size):
        video = F.interpolate(video.float(), size=(spec.image_size, spec.image_size), mode="area")
        video = video.round().clamp(0, 255).to(torch.uint8)
    return video


def decode_sample(sample: dict, spec: ClipSpec) -> dict:
    """Raw sample (bytes per extension) -> {key, frames uint8 [T,3,S,S], audio float [N], meta}."""
    meta = json.loads(sample["json"]) if "json" in sample else {}
    if "mp4" in sample:
        frames, fps = decode_mp4(sample["mp4"])
    elif "frames.npy" in sample:
        import io

        frames, fps = np.load(io.BytesIO(sample["frames.npy"]), allow_pickle=False), float(meta.get("fps", spec.fps))
    else:
        raise ValueError(f"sample {sample.get('__key__')} has no video ({VIDEO_KEYS})")
    if abs(fps - spec.fps) > 0.01:
        # Resample the frame index grid to the model's fps (nearest frame).
        times = np.arange(spec.n_video_frames) / spec.fps
        frames = frames[np.minimum((times * fps).round().astype(int), len(frames) - 1)]
    audio_key = next((k for k in AUDIO_KEYS if k in sample), None)
    if audio_key is None:
        raise ValueError(f"sample {sample.get('__key__')} has no audio ({AUDIO_KEYS})")
    audio = decode_audio(sample[audio_key], spec.sample_rate)
    if not np.isfinite(audio).all():
        raise ValueError(f"sample {sample.get('__key__')} has NaN/Inf audio")
    return {
        "key": sample["__key__"],
        "frames": frames_to_tensor(fit_length(frames, spec.n_video_frames), spec),
        "audio": torch.from_numpy(fit_length(audio, spec.n_samples).copy()),
        "meta": meta,
    }


def collate(samples: list[dict]) -> dict:
    """Stack tensors; keep keys and metadata (variable-length event lists) as lists."""
    return {
        "key": [s["key"] for s in samples],
        "frames": torch.stack([s["frames"] for s in samples]),
        "audio": torch.stack([s["audio"] for s in samples]),
        "meta": [s["meta"] for s in samples],
    }
