"""A LightningDataModule that streams webdataset shards (train / val / test folders)."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import webdataset as wds
from torch.utils.data import DataLoader

from v2a.data.decode import collate, decode_sample
from v2a.data.shard_writer import read_index, shard_urls
from v2a.data.train_stream import EpochLoader, TrainStream
from v2a.shapes import ClipSpec

log = logging.getLogger(__name__)


def _decode_or_skip(sample: dict, spec: ClipSpec) -> dict | None:
    try:
        return decode_sample(sample, spec)
    except Exception as error:  # a bad sample is skipped with a reason, never kills a long run
        log.warning("skipping sample %s: %s", sample.get("__key__"), error)
        return None


def _every_nth_for_rank(samples):
    """Keep samples i with i % world_size == rank (all ranks read the same shards in the same order)."""
    rank, world, _, _ = wds.utils.pytorch_worker_info()
    for index, sample in enumerate(samples):
        if index % world == rank:
            yield sample


class ShardDataModule(pl.LightningDataModule):
    """Streams ``root/{train,val,test}`` shard folders.

    Training is resampled (shards drawn per worker and rank, see :mod:`v2a.data.train_stream`) with an
    explicit epoch length, which keeps batch counts equal across DDP ranks, and its position is part of
    every checkpoint; evaluation splits are read once, in order, split by rank and worker so that no
    clip is seen twice.
    """

    def __init__(
        self,
        *,
        root: str,
        spec: ClipSpec,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 1,
        shuffle_buffer: int = 500,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        samples_per_epoch: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.spec = spec
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self._resume_state: dict | None = None

    def split_dir(self, stage: str) -> Path:
        return self.root / self.splits[stage]

    def _world(self) -> int:
        trainer = getattr(self, "trainer", None)
        return trainer.world_size if trainer is not None else 1

    def _eval_pipeline(self, stage: str) -> wds.WebDataset:
        urls = shard_urls(self.split_dir(stage))
        decode = partial(_decode_or_skip, spec=self.spec)
        # Split by *sample* across ranks, not by shard: a small eval split with fewer shards than ranks
        # would otherwise leave a rank with no batch and deadlock the epoch-end metric reduction.
        dataset = wds.WebDataset(urls, shardshuffle=False, nodesplitter=lambda src: src, empty_check=False)
        return dataset.compose(_every_nth_for_rank).map(decode).select(lambda s: s is not None)

    def _eval_loader(self, stage: str) -> DataLoader:
        return DataLoader(self._eval_pipeline(stage), batch_size=self.eval_batch_size, num_workers=self.num_workers,
                          collate_fn=collate)

    # --- resumable position in the training stream ---------------------------------------------
    def state_dict(self) -> dict:
        """Epoch and batches consumed in it, read from the trainer's loop progress at checkpoint time."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        loop = trainer.fit_loop
        return {"epoch": loop.epoch_progress.current.processed,
                "batches": loop.epoch_loop.batch_progress.current.processed}

    def load_state_dict(self, state: dict) -> None:
        self._resume_state = dict(state)

    def train_dataloader(self) -> DataLoader:
        urls = shard_urls(self.split_dir("train"))
        epoch = self.samples_per_epoch or read_index(self.split_dir("train")).get("samples", 1000)
        # the epoch is global: divide it over ranks and workers
        per_worker = max(self.batch_size, epoch // (self._world() * max(1, self.num_workers)))
        stream = TrainStream(urls, decode=partial(_decode_or_skip, spec=self.spec), seed=self.seed,
                             shuffle_buffer=self.shuffle_buffer, samples_per_worker=per_worker,
                             batch_size=self.batch_size)
        resume = self._resume_state or {}
        return EpochLoader(stream, start_epoch=resume.get("epoch", 0), skip_batches=resume.get("batches", 0),
                           batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=collate,
                           drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
