"""The training stream under 2 ranks x 2 workers: disjoint shards, equal batches, exact resume with workers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from v2a.data.datamodule import ShardDataModule
from v2a.data.frames_npy import tar_samples
from v2a.data.shard_writer import chunked, record_shard, shard_name, shard_urls, write_shard
from v2a.shapes import ClipSpec

BATCH = 4


@pytest.fixture(scope="module")
def small_shards(tiny_shards, tmp_path_factory) -> Path:
    """The 48 tiny train clips re-cut into 12 shards of 4 (enough for 4 readers to hold disjoint shards)."""
    root = tmp_path_factory.mktemp("small_shards")
    samples = [s for url in shard_urls(tiny_shards / "train") for s in tar_samples(Path(url))]
    split = root / "train"
    split.mkdir()
    index = {"shards": [], "samples": 0, "skipped": []}
    for number, chunk in chunked(samples, 4):
        path = split / shard_name("train", number)
        record_shard(split, index, path, write_shard(path, chunk))
    return root


def rank_module(root: Path, rank: int, *, spec: ClipSpec | None = None, **kwargs) -> ShardDataModule:
    module = ShardDataModule(root=str(root), spec=spec or ClipSpec(), batch_size=BATCH, num_workers=2,
                             shuffle_buffer=6, samples_per_epoch=48, seed=3, **kwargs)
    module.trainer = SimpleNamespace(global_rank=rank, world_size=2)  # what Lightning sets under DDP
    return module


def test_two_ranks_two_workers_read_disjoint_shards_and_equal_batches(small_shards):
    loaders = {rank: rank_module(small_shards, rank).train_dataloader() for rank in (0, 1)}
    partitions = []
    for _epoch in range(2):
        shards_of = defaultdict(set)  # (rank, worker) -> shards it read
        counts = {}
        for rank, loader in loaders.items():
            batches = list(loader)
            counts[rank] = len(batches)
            for number, batch in enumerate(batches):
                assert batch["frames"].shape[0] == BATCH
                shards_of[rank, number % 2] |= set(batch["shard"])  # in-order loading: batch i is worker i % 2's
        # 48 clips per epoch over 2 ranks x 2 workers in batches of 4: 3 batches per worker, 6 per rank
        assert counts == {0: 6, 1: 6}
        readers = list(shards_of)
        assert len(readers) == 4 and all(shards_of[r] for r in readers)
        for i, first in enumerate(readers):
            for second in readers[i + 1 :]:
                assert not shards_of[first] & shards_of[second], (first, second)
        partitions.append(dict(shards_of))
    assert partitions[0] != partitions[1]  # the shard order is reshuffled every epoch (level 1 of the shuffle)


def test_the_same_epoch_replays_identically_and_epochs_differ(small_shards):
    spec = ClipSpec(duration=1.0)  # crops of 1 s from 2 s clips: the random crops must replay too
    first, second = (list(rank_module(small_shards, 1, spec=spec).train_dataloader()) for _ in range(2))
    assert [b["key"] for b in first] == [b["key"] for b in second]
    assert all(torch.equal(a["frames"], b["frames"]) and torch.equal(a["audio"], b["audio"])
               for a, b in zip(first, second, strict=True))
    starts = {m["crop_start"] for b in first for m in b["meta"]}
    assert len(starts) > 3  # random crops, not always the clip's start
    loader = rank_module(small_shards, 1, spec=spec).train_dataloader()
    epoch0, epoch1 = list(loader), list(loader)
    assert [b["key"] for b in epoch0] != [b["key"] for b in epoch1]


def test_resume_with_workers_replays_the_rest_of_the_epoch(small_shards):
    spec = ClipSpec(duration=1.0)
    full = list(rank_module(small_shards, 0, spec=spec).train_dataloader())
    resumed_module = rank_module(small_shards, 0, spec=spec)
    resumed_module.load_state_dict({"epoch": 0, "batches": 3, "readers": 4})  # odd: the resume lands on worker 1
    resumed = list(resumed_module.train_dataloader())
    assert len(resumed) == len(full) - 3
    for a, b in zip(full[3:], resumed, strict=True):
        assert a["key"] == b["key"] and [m["crop_start"] for m in a["meta"]] == [m["crop_start"] for m in b["meta"]]
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["audio"], b["audio"])


def test_state_dict_records_the_readers(small_shards):
    module = rank_module(small_shards, 0)
    progress = SimpleNamespace(current=SimpleNamespace(processed=5))
    module.trainer.fit_loop = SimpleNamespace(epoch_progress=SimpleNamespace(current=SimpleNamespace(processed=1)),
                                              epoch_loop=SimpleNamespace(batch_progress=progress))
    assert module.state_dict() == {"epoch": 1, "batches": 5, "readers": 4}
