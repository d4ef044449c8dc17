"""The training stream: endless, deterministic and resumable webdataset sampling.

Shards are drawn with replacement and samples shuffled with a seed that depends only on
(seed, rank, worker, epoch), so a run is repeatable and every rank/worker sees different data.
``skip_batches`` fast-forwards a resumed epoch *before* decoding, so resuming costs tar reads,
not decodes, and the resumed run sees exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset


def worker_position() -> tuple[int, int, int, int]:
    """(rank, world size, worker, workers) of the calling process."""
    return wds.utils.pytorch_worker_info()


class TrainStream(IterableDataset):
    """Resampled shards -> seeded shuffle of raw samples -> skip -> decode, ``samples_per_worker`` per epoch."""

    def __init__(self, urls: list[str], *, decode: Callable[[dict], dict | None], seed: int, shuffle_buffer: int,
                 samples_per_worker: int, batch_size: int) -> None:
        super().__init__()
        self.urls = urls
        self.decode = decode
        self.seed = seed
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.samples_per_worker = samples_per_worker
        self.batch_size = batch_size
        self.epoch = 0
        self.skip_batches = 0  # batches of this epoch already consumed (all workers together)

    def _raw_samples(self, rng: random.Random) -> Iterator[dict]:
        def shards():
            while True:
                yield {"url": rng.choice(self.urls)}

        yield from wds.tariterators.tarfile_samples(shards(), handler=wds.warn_and_continue)

    def _shuffled(self, samples: Iterator[dict], rng: random.Random) -> Iterator[dict]:
        buffer: list[dict] = []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))

    def __iter__(self) -> Iterator[dict]:
        rank, _, worker, workers = worker_position()
        rng = random.Random(wds.utils.make_seed(self.seed, rank, worker, self.epoch))
        # The DataLoader takes batches from its workers round-robin: worker w made batches w, w+W, ...
        skip = len(range(worker, self.skip_batches, workers)) * self.batch_size
        produced = skip
        for index, raw in enumerate(self._shuffled(self._raw_samples(rng), rng)):
            if produced >= self.samples_per_worker:
                return
            if index < skip:
                continue
            sample = self.decode(raw)
            if sample is not None:
                produced += 1
                yield sample


class EpochLoader(DataLoader):
    """A DataLoader that tells its :class:`TrainStream` which epoch it is and what to skip on resume."""

    def __init__(self, dataset: TrainStream, *, start_epoch: int = 0, skip_batches: int = 0, **kwargs) -> None:
        super().__init__(dataset, **kwargs)
        self._next_epoch = start_epoch
        self._pending_skip = skip_batches

    def __iter__(self):
        self.dataset.epoch = self._next_epoch
        self.dataset.skip_batches = self._pending_skip
        self._next_epoch += 1
        self._pending_skip = 0  # only the first epoch after a resume is fast-forwarded
        return super().__iter__()
