"""Sample decoders: what a streamed clip becomes (video + audio, or audio only), a config choice of the data.

A decoder turns one raw webdataset sample (bytes per extension) into tensors on the clip grid, cut by a
:class:`~v2a.data.crops.TimeCrop`; it raises on a sample it cannot use (the stream skips it with the
reason). Decoders are plain picklable objects (data-loader workers receive copies), selected by
``data.decoder._target_``; the stream passes the spec, the crop, the sample's generator and the tokenizer.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from v2a.data.crops import StartCrop, TimeCrop, choose_window, crop_audio, crop_meta
from v2a.data.decode import decode_sample, sample_audio, sample_meta
from v2a.data.visual_features import all_folders_have_features
from v2a.data.visual_features import member as feature_member
from v2a.shapes import ClipSpec
from v2a.text.tokens import TextTokenizer


class SampleDecoder:
    """Raw sample -> dict of tensors and lists (batched by :func:`v2a.data.decode.collate`)."""

    def __call__(self, sample: dict, rng: random.Random | None = None, *, spec: ClipSpec, crop: TimeCrop,
                 tokenizer: TextTokenizer | None = None) -> dict:
        raise NotImplementedError

    def for_folders(self, folders: Sequence[Path], spec: ClipSpec, visual_features: Mapping | None = None) -> SampleDecoder:
        """The decoder for a stream of these shard folders (called once per loader, before workers start):
        here it can read what the folders' indexes hold. ``visual_features``: the cached features the model reads
        (``{"name", "identity"}``, :mod:`v2a.data.visual_features`), None for a model without a pretrained backbone."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class VideoAudioDecoder(SampleDecoder):
    """Video frames and audio cut at the same instant, their padding masks, metadata and text tokens
    (see :func:`v2a.data.decode.decode_sample`): the V2A, sync and classifier stages.

    When the model reads a pretrained backbone's features and every folder streamed holds them (extracted by
    ``data_prep/extract_features.py`` with the same backbone), batches carry ``visual_features`` instead of
    ``frames``: no video is decoded (``keep_frames=True`` decodes the frames too: evaluation scores them).
    """

    def __init__(self, *, keep_frames: bool = False, features: str | None = None) -> None:
        self.keep_frames = keep_frames
        self.features = features   # the member read instead of the video (set by for_folders)

    def for_folders(self, folders: Sequence[Path], spec: ClipSpec, visual_features: Mapping | None = None) -> SampleDecoder:
        if all_folders_have_features(folders, visual_features, spec):
            return VideoAudioDecoder(keep_frames=self.keep_frames, features=feature_member(visual_features["name"]))
        return VideoAudioDecoder(keep_frames=self.keep_frames)

    def __call__(self, sample: dict, rng: random.Random | None = None, *, spec: ClipSpec, crop: TimeCrop,
                 tokenizer: TextTokenizer | None = None) -> dict:
        return decode_sample(sample, spec, crop=crop, rng=rng, tokenizer=tokenizer.fields if tokenizer else None,
                             features=self.features, frames=self.features is None or self.keep_frames)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(features={self.features!r}, keep_frames={self.keep_frames})"


class AudioDecoder(SampleDecoder):
    """Audio only (no video is decoded, a sample needs none): ``key``, ``audio`` float [N], ``audio_mask``
    bool [N], ``meta`` on the crop's clock, ``shard`` and, with a tokenizer, text tokens. The vocoder stage.

    Any shard with a ``flac``/``wav`` member works: the synthetic benchmark, the espeak-ng speech shards
    (``data_prep/make_speech_shards.py``), real-video ingests.
    """

    def __call__(self, sample: dict, rng: random.Random | None = None, *, spec: ClipSpec, crop: TimeCrop,
                 tokenizer: TextTokenizer | None = None) -> dict:
        key = sample.get("__key__")
        meta = sample_meta(sample)
        audio = sample_audio(sample, spec)
        seconds = len(audio) / spec.sample_rate
        recorded = meta.get("valid_duration")
        if isinstance(recorded, int | float) and recorded > 0:
            seconds = min(seconds, float(recorded))
        window = choose_window(seconds, spec, crop or StartCrop(), rng)
        out = {"key": key, "audio": torch.from_numpy(crop_audio(audio, window, spec)),
               "audio_mask": torch.from_numpy(window.audio_mask(spec)), "meta": crop_meta(meta, window, spec),
               "shard": sample.get("__url__", "")}
        if tokenizer is not None:
            out.update({name: torch.from_numpy(array) for name, array in tokenizer.fields(meta).items()})
        return out
