"""Audio-only streaming from one or more shard roots (vocoder training): no video is decoded.

Any shards with a ``flac``/``wav`` entry work: the synthetic benchmark (its video is ignored), the
espeak-ng speech shards (``data_prep/make_speech_shards.py``), real-video ingests. Training draws
shards with replacement from all roots together (so a root's share is its share of shards), through
the same deterministic, resumable :class:`TrainStream` as the V2A data; evaluation reads each root's
split once, in order.
"""

from __future__ import annotations

import json
import logging
import random
from functools import partial
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from v2a.data.datamodule import _every_nth_for_rank
from v2a.data.shard_writer import read_index, shard_urls
from v2a.data.train_stream import EpochLoader, TrainStream
from v2a.media.clip_bytes import decode_audio
from v2a.shapes import ClipSpec

log = logging.getLogger(__name__)


AUDIO_KEYS = ("flac", "wav")


def fit_audio(audio: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad a mono waveform to ``length`` samples (clips start at their beginning)."""
    if len(audio) >= length:
        return audio[:length]
    return np.pad(audio, (0, length - len(audio)))


def decode_audio_sample(sample: dict, rng: random.Random | None = None, *, spec: ClipSpec) -> dict | None:
    """Raw sample -> {key, audio float [spec.n_samples], meta}; None (logged) when it has no usable audio.

    ``rng`` (given by the training stream) is unused: random crops are drawn by the training step.
    """
    key = sample.get("__key__")
    try:
        audio_key = next((k for k in AUDIO_KEYS if k in sample), None)
        if audio_key is None:
            raise ValueError(f"no audio ({AUDIO_KEYS})")
        audio = decode_audio(sample[audio_key], spec.sample_rate)
        if not len(audio) or not np.isfinite(audio).all():
            raise ValueError("empty or NaN/Inf audio")
        meta = json.loads(sample["json"]) if "json" in sample else {}
        return {"key": key, "audio": torch.from_numpy(fit_audio(audio, spec.n_samples).copy()), "meta": meta}
    except Exception as error:  # a bad sample is skipped with a reason, never kills a long run
        log.warning("skipping sample %s: %s", key, error)
        return None


def collate_audio(samples: list[dict]) -> dict:
    return {"key": [s["key"] for s in samples], "audio": torch.stack([s["audio"] for s in samples]),
            "meta": [s["meta"] for s in samples]}


class AudioShardDataModule(pl.LightningDataModule):
    """Streams the audio of ``roots[i]/{train,val,test}`` shard folders as fixed-length clips."""

    def __init__(self, *, roots: list[str], spec: ClipSpec, batch_size: int = 16, eval_batch_size: int | None = None,
                 num_workers: int = 0, shuffle_buffer: int = 500, samples_per_epoch: int | None = None,
                 seed: int = 0, train_split: str = "train", val_split: str = "val", test_split: str = "test") -> None:
        super().__init__()
        if not roots:
            raise ValueError("AudioShardDataModule needs at least one shard root")
        self.roots = [Path(r) for r in roots]
        self.spec = spec
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self._resume_state: dict | None = None

    def urls(self, stage: str) -> list[str]:
        """Shard paths of one split over all roots (a missing folder is a clear error)."""
        return [url for root in self.roots for url in shard_urls(root / self.splits[stage])]

    def _world(self) -> int:
        trainer = getattr(self, "trainer", None)
        return trainer.world_size if trainer is not None else 1

    # --- resumable position in the training stream (as ShardDataModule) --------------------------
    def state_dict(self) -> dict:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        loop = trainer.fit_loop
        return {"epoch": loop.epoch_progress.current.processed,
                "batches": loop.epoch_loop.batch_progress.current.processed}

    def load_state_dict(self, state: dict) -> None:
        self._resume_state = dict(state)

    def train_dataloader(self) -> DataLoader:
        epoch = self.samples_per_epoch or sum(read_index(r / self.splits["train"]).get("samples", 0)
                                              for r in self.roots) or 1000
        per_worker = max(self.batch_size, epoch // (self._world() * max(1, self.num_workers)))
        stream = TrainStream(self.urls("train"), decode=partial(decode_audio_sample, spec=self.spec), seed=self.seed,
                             shuffle_buffer=self.shuffle_buffer, samples_per_worker=per_worker,
                             batch_size=self.batch_size)
        resume = self._resume_state or {}
        return EpochLoader(stream, start_epoch=resume.get("epoch", 0), skip_batches=resume.get("batches", 0),
                           batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=collate_audio,
                           drop_last=True)

    def eval_dataset(self, stage: str) -> wds.WebDataset:
        """One split of every root, in order, split by sample across ranks."""
        dataset = wds.WebDataset(self.urls(stage), shardshuffle=False, nodesplitter=lambda src: src, empty_check=False)
        decode = partial(decode_audio_sample, spec=self.spec)
        return dataset.compose(_every_nth_for_rank).map(decode).select(lambda s: s is not None)

    def _eval_loader(self, stage: str) -> DataLoader:
        return DataLoader(self.eval_dataset(stage), batch_size=self.eval_batch_size, num_workers=self.num_workers,
                          collate_fn=collate_audio)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
