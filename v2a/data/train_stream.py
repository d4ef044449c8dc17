"""The training stream: endless, deterministic and resumable webdataset sampling.

Two-level shuffle. (1) Shards: every epoch, one permutation of the shard list shared by all ranks
(seeded by (seed, epoch)) is dealt round-robin to the ``world_size × num_workers`` readers, so readers
hold disjoint shards; each reader then draws from its own shards with replacement (webdataset's
``resampled=True``) and an explicit epoch length, which keeps batch counts equal on every rank.
(2) Samples: a seeded shuffle buffer over the raw (undecoded) samples.

Every random choice depends only on (seed, rank, worker, epoch) and the sample's position, so a run is
repeatable, and ``skip_batches`` fast-forwards a resumed epoch *before* decoding: resuming costs tar
reads, not decodes, and the resumed run sees exactly the batches (and crops) of the uninterrupted one.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from itertools import islice

import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

log = logging.getLogger(__name__)


def worker_position() -> tuple[int, int, int, int]:
    """(rank, world size, worker, workers) of the calling process, as webdataset sees it."""
    return wds.utils.pytorch_worker_info()


def reader_shards(urls: list[str], *, seed: int, epoch: int, reader: int, readers: int) -> list[str]:
    """The shards of reader ``reader`` of ``readers`` in ``epoch``: disjoint when there are enough shards.

    With fewer shards than readers, readers share shards (their streams still differ by seed).
    """
    order = sorted(urls)
    random.Random(f"shards/{seed}/{epoch}").shuffle(order)  # str seed: hashed with sha512, same in every process
    if len(order) < readers:
        return [order[reader % len(order)]]
    return sorted(order[reader::readers])  # sorted: the draws below depend on the set, not on the permutation


class TrainStream(IterableDataset):
    """Reader's shards, resampled -> seeded shuffle of raw samples -> skip -> decode, ``samples_per_worker`` per epoch.

    ``decode(raw, rng)`` gets a generator of its own per sample (for random crops) and returns None to
    skip a bad sample. ``rank`` / ``world_size`` come from the trainer (webdataset's guess when None).
    """

    def __init__(self, urls: list[str], *, decode: Callable[[dict, random.Random], dict | None], seed: int,
                 shuffle_buffer: int, samples_per_worker: int, batch_size: int, rank: int | None = None,
                 world_size: int | None = None) -> None:
        super().__init__()
        if not urls:
            raise ValueError("no shards to stream")
        self.urls = list(urls)
        self.decode = decode
        self.seed = seed
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.samples_per_worker = samples_per_worker
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.skip_batches = 0  # batches of this epoch already consumed (all workers together)

    def position(self) -> tuple[int, int, int, int]:
        """(rank, world size, worker, workers) of the calling process."""
        rank, world, worker, workers = worker_position()
        if self.rank is not None:
            rank, world = self.rank, self.world_size or 1
        return rank, world, worker, workers

    def _raw_samples(self, shards: list[str], rng: random.Random) -> Iterator[dict]:
        def draws():
            while True:
                yield {"url": rng.choice(shards)}

        yield from wds.tariterators.tarfile_samples(draws(), handler=wds.warn_and_continue)

    def _shuffled(self, samples: Iterator[dict], rng: random.Random) -> Iterator[dict]:
        buffer: list[dict] = []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))

    def __iter__(self) -> Iterator[dict]:
        rank, world, worker, workers = self.position()
        shards = reader_shards(self.urls, seed=self.seed, epoch=self.epoch, reader=rank * workers + worker,
                               readers=world * workers)
        rng = random.Random(wds.utils.make_seed(self.seed, rank, worker, self.epoch))
        # The DataLoader takes batches from its workers round-robin: worker w made batches w, w+W, ...
        skip = len(range(worker, self.skip_batches, workers)) * self.batch_size
        produced = skip
        for index, raw in enumerate(self._shuffled(self._raw_samples(shards, rng), rng)):
            if produced >= self.samples_per_worker:
                return
            if index < skip:
                continue
            sample = self.decode(raw, random.Random(f"sample/{self.seed}/{rank}/{worker}/{self.epoch}/{index}"))
            if sample is not None:
                produced += 1
                yield sample


class EpochLoader(DataLoader):
    """A DataLoader that tells its :class:`TrainStream` which epoch it is and what to skip on resume.

    Works with worker processes: the stream is copied into the workers when an epoch's iterator starts,
    after its epoch and skip are set (``persistent_workers`` would keep stale copies, so it is refused).
    """

    def __init__(self, dataset: TrainStream, *, start_epoch: int = 0, skip_batches: int = 0, **kwargs) -> None:
        if kwargs.get("persistent_workers"):
            raise ValueError("EpochLoader needs fresh workers each epoch (persistent_workers=False)")
        super().__init__(dataset, **kwargs)
        self._next_epoch = start_epoch
        self._pending_skip = skip_batches

    def __iter__(self):
        # Workers skip whole rounds (one batch each) before decoding; the rest of a round is decoded and
        # dropped here, because the DataLoader always restarts its round-robin at worker 0.
        workers = max(1, self.num_workers)
        drop = self._pending_skip % workers
        self.dataset.epoch = self._next_epoch
        self.dataset.skip_batches = self._pending_skip - drop
        self._next_epoch += 1
        self._pending_skip = 0  # only the first epoch after a resume is fast-forwarded
        iterator = super().__iter__()
        return iterator if drop == 0 else islice(iterator, drop, None)
