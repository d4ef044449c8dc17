"""A LightningDataModule that streams webdataset shards (train / val / test folders)."""

from __future__ import annotations

import logging
import random
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import webdataset as wds
from torch.utils.data import DataLoader

from v2a.data.decode import collate, decode_sample
from v2a.data.shard_writer import read_index, shard_urls
from v2a.shapes import ClipSpec

log = logging.getLogger(__name__)


class SeededShuffle:
    """A shuffle buffer whose order depends only on (seed, rank, worker, epoch).

    webdataset's own shuffle seeds from pid and time, which makes runs unrepeatable.
    """

    def __init__(self, bufsize: int, seed: int) -> None:
        self.bufsize, self.seed, self.epoch = bufsize, seed, -1

    def __call__(self, samples):
        self.epoch += 1
        rng = random.Random(wds.utils.make_seed(self.seed, wds.utils.pytorch_worker_seed(), self.epoch))
        buffer: list = []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= self.bufsize:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer


def _decode_or_skip(sample: dict, spec: ClipSpec) -> dict | None:
    try:
        return decode_sample(sample, spec)
    except Exception as error:  # a bad sample is skipped with a reason, never kills a long run
        log.warning("skipping sample %s: %s", sample.get("__key__"), error)
        return None


class ShardDataModule(pl.LightningDataModule):
    """Streams ``root/{train,val,test}`` shard folders.

    Training is resampled (infinite, shards drawn per worker and rank) with an explicit epoch length,
    which keeps batch counts equal across DDP ranks; evaluation splits are read once, in order,
    split by rank and worker so that no clip is seen twice.
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

    def split_dir(self, stage: str) -> Path:
        return self.root / self.splits[stage]

    def _world(self) -> int:
        trainer = getattr(self, "trainer", None)
        return trainer.world_size if trainer is not None else 1

    def _pipeline(self, stage: str) -> wds.WebDataset:
        urls = shard_urls(self.split_dir(stage))
        decode = partial(_decode_or_skip, spec=self.spec)
        if stage == "train":
            # Each rank and worker draws shards with its own deterministic stream (seed, rank, worker, epoch).
            dataset = wds.DataPipeline(
                wds.ResampledShards(urls, seed=self.seed, deterministic=True),
                wds.tarfile_to_samples(handler=wds.warn_and_continue),
                SeededShuffle(self.shuffle_buffer, self.seed),
                wds.map(decode),
                wds.select(lambda s: s is not None),
            )
            epoch = self.samples_per_epoch or read_index(self.split_dir(stage)).get("samples", 1000)
            # with_epoch counts per worker: divide the global epoch over ranks and workers.
            per_worker = max(1, epoch // (self._world() * max(1, self.num_workers)))
            return dataset.with_epoch(per_worker)
        dataset = wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node, empty_check=False)
        return dataset.map(decode).select(lambda s: s is not None)

    def _loader(self, stage: str) -> DataLoader:
        batch = self.batch_size if stage == "train" else self.eval_batch_size
        return DataLoader(
            self._pipeline(stage),
            batch_size=batch,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0 and stage == "train",
            drop_last=stage == "train",
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
