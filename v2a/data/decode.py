"""Turn a raw webdataset sample into fixed-size tensors on the clip grid: crop, pad, mask, tokenize.

Video comes from ``frames.npy`` when the shard holds it (no decoding), else from the ``mp4``; audio from the
``flac`` (or ``wav``); both decoded by ``v2a.media``. Audio and video are cut by one
:class:`~v2a.data.crops.CropWindow`, so they stay aligned whatever the crop.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from v2a.data.crops import StartCrop, TimeCrop, choose_window, crop_audio, crop_meta, video_indices
from v2a.media import decode_mono, decode_video, square_resize
from v2a.shapes import ClipSpec

VIDEO_KEYS = ("frames.npy", "mp4")  # in order of preference
AUDIO_KEYS = ("flac", "wav")


@dataclass(frozen=True)
class StoredVideo:
    """A sample's video before decoding: its length, its rate and a reader of chosen frames."""

    n_frames: int
    fps: float
    read: Callable[[np.ndarray], np.ndarray]  # frame indices -> uint8 [N, H, W, 3]


def _npy_video(data: bytes, fps: float) -> StoredVideo:
    frames = np.load(io.BytesIO(data), allow_pickle=False)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames.npy must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    return StoredVideo(len(frames), fps, lambda indices: frames[indices])


def _mp4_video(data: bytes) -> StoredVideo:
    frames, fps = decode_video(data)  # a shard clip is short: all of it, once
    return StoredVideo(len(frames), fps, lambda indices: frames[np.minimum(indices, len(frames) - 1)])


def stored_video(sample: dict, meta: dict, spec: ClipSpec) -> StoredVideo:
    """The sample's video: pre-extracted frames when present, else its mp4."""
    if "frames.npy" in sample:
        return _npy_video(sample["frames.npy"], float(meta.get("fps", spec.fps)))
    if "mp4" in sample:
        return _mp4_video(sample["mp4"])
    raise ValueError(f"sample {sample.get('__key__')} has no video ({VIDEO_KEYS})")


def frames_to_tensor(frames: np.ndarray, spec: ClipSpec) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, 3, S, S] at the spec's resolution (centre crop, area resize)."""
    return torch.from_numpy(square_resize(frames, spec.image_size)).permute(0, 3, 1, 2)


def _valid_seconds(video: StoredVideo, audio: np.ndarray, meta: dict, spec: ClipSpec) -> float:
    """Seconds of real content: the shorter stream, and no more than the shard says is real (padded clips)."""
    seconds = min(video.n_frames / video.fps, len(audio) / spec.sample_rate)
    recorded = meta.get("valid_duration")
    return min(seconds, float(recorded)) if isinstance(recorded, int | float) and recorded > 0 else seconds


def sample_meta(sample: dict) -> dict:
    """The sample's ``json`` member ({} without one); unreadable json is an error."""
    try:
        return json.loads(sample["json"]) if "json" in sample else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"unreadable json: {error}") from None


def sample_audio(sample: dict, spec: ClipSpec) -> np.ndarray:
    """The sample's audio (``flac`` or ``wav``) as mono float at the spec's rate; an error when it has none."""
    audio_key = next((k for k in AUDIO_KEYS if k in sample), None)
    if audio_key is None:
        raise ValueError(f"sample {sample.get('__key__')} has no audio ({AUDIO_KEYS})")
    audio = decode_mono(sample[audio_key], spec.sample_rate)
    if not np.isfinite(audio).all():
        raise ValueError(f"sample {sample.get('__key__')} has NaN/Inf audio")
    return audio


def _cached_features(sample: dict, member: str, meta: dict, spec: ClipSpec) -> StoredVideo:
    """A sample's cached visual features (one row per stored frame, on the json's clock) as a stored video."""
    from v2a.data.visual_features import read_features

    if member not in sample:
        raise ValueError(f"sample {sample.get('__key__')} has no cached features {member} (its video could not be read "
                         "when they were extracted)")
    rows = read_features(sample[member])
    return StoredVideo(len(rows), float(meta.get("fps", spec.fps)), lambda indices: rows[indices])


def decode_sample(sample: dict, spec: ClipSpec, *, crop: TimeCrop | None = None, rng: random.Random | None = None,
                  tokenizer: Callable[[dict], dict[str, np.ndarray]] | None = None, features: str | None = None,
                  frames: bool = True) -> dict:
    """Raw sample (bytes per extension) -> one crop of it on the spec's grid.

    Returns ``key``, ``frames`` uint8 [T, 3, S, S], ``audio`` float [N], ``mask`` bool [T] and
    ``audio_mask`` bool [N] (False where a short clip was padded), ``meta`` (on the crop's clock),
    ``shard`` (the tar it came from) and, with a tokenizer, ``{field}_tokens`` / ``{field}_mask``.
    With ``features`` (a cached-features member, :mod:`v2a.data.visual_features`) also ``visual_features``
    float16 [T, D], the same frames' backbone features; ``frames=False`` then skips decoding the video.
    """
    meta = sample_meta(sample)
    cached = _cached_features(sample, features, meta, spec) if features is not None else None
    video = stored_video(sample, meta, spec) if frames else None
    audio = sample_audio(sample, spec)
    timeline = cached if cached is not None else video
    if timeline is None:
        raise ValueError("decode_sample needs frames=True or cached features")
    window = choose_window(_valid_seconds(timeline, audio, meta, spec), spec, crop or StartCrop(), rng)
    out: dict = {"key": sample["__key__"]}
    if video is not None:
        out["frames"] = frames_to_tensor(video.read(video_indices(window, spec, video.fps, video.n_frames)), spec)
    if cached is not None:
        rows = cached.read(video_indices(window, spec, cached.fps, cached.n_frames))
        out["visual_features"] = torch.from_numpy(np.ascontiguousarray(rows))
    out.update({
        "audio": torch.from_numpy(crop_audio(audio, window, spec)),
        "mask": torch.from_numpy(window.frame_mask(spec)),
        "audio_mask": torch.from_numpy(window.audio_mask(spec)),
        "meta": crop_meta(meta, window, spec),
        "shard": sample.get("__url__", ""),
    })
    if tokenizer is not None:
        out.update({name: torch.from_numpy(array) for name, array in tokenizer(meta).items()})
    return out


def collate(samples: list[dict]) -> dict:
    """Stack tensors; keep keys, shards and metadata (variable-length event lists) as lists."""
    return {name: torch.stack([s[name] for s in samples]) if isinstance(value, torch.Tensor)
            else [s[name] for s in samples] for name, value in samples[0].items()}
