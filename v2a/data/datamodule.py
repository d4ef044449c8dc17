"""A LightningDataModule that streams webdataset shards (train / val / test folders)."""

from __future__ import annotations

import logging
import random
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import webdataset as wds
from torch.utils.data import DataLoader

from v2a.data.crops import RandomCrop, StartCrop, TimeCrop
from v2a.data.decode import collate, decode_sample
from v2a.data.shard_writer import read_index, shard_urls
from v2a.data.train_stream import EpochLoader, TrainStream
from v2a.shapes import ClipSpec
from v2a.text.tokens import TextTokenizer, find_tokenizer

log = logging.getLogger(__name__)


def _decode_or_skip(sample: dict, rng: random.Random | None = None, *, spec: ClipSpec, crop: TimeCrop,
                    tokenizer: TextTokenizer | None) -> dict | None:
    try:
        return decode_sample(sample, spec, crop=crop, rng=rng, tokenizer=tokenizer)
    except Exception as error:  # a bad sample is skipped with a reason, never kills a long run
        log.warning("skipping sample %s: %s", sample.get("__key__"), error)
        return None


def _decode_eval(sample: dict, *, seed: int, **kwargs) -> dict | None:
    # Evaluation crops are a function of the clip alone: the same clip gets the same crop every time.
    return _decode_or_skip(sample, random.Random(f"eval/{seed}/{sample.get('__key__')}"), **kwargs)


def _every_nth_for_rank(samples):
    """Keep samples i with i % world_size == rank (all ranks read the same shards in the same order)."""
    rank, world, _, _ = wds.utils.pytorch_worker_info()
    for index, sample in enumerate(samples):
        if index % world == rank:
            yield sample


class ShardDataModule(pl.LightningDataModule):
    """Streams ``root/{train,val,test}`` shard folders.

    Training is resampled (each rank and worker reads its own disjoint shards, see
    :mod:`v2a.data.train_stream`) with an explicit epoch length, which keeps batch counts equal across DDP
    ranks, and its position is part of every checkpoint; clips are cut by ``train_crop`` (random by
    default). Evaluation splits are read once, in order, split by rank and worker so that no clip is
    seen twice, and cut by ``eval_crop`` (the clip's start by default): deterministic. With
    ``root/tokenizer.model`` present (or ``tokenizer`` given) batches also carry text token ids.
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
        train_crop: TimeCrop | None = None,
        eval_crop: TimeCrop | None = None,
        tokenizer: str | None = None,
        text_max_tokens: dict[str, int] | None = None,
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
        self.train_crop = train_crop or RandomCrop()
        self.eval_crop = eval_crop or StartCrop()
        self.tokenizer_path = tokenizer
        self.text_max_tokens = dict(text_max_tokens) if text_max_tokens else None
        self._tokenizer: TextTokenizer | None | bool = False  # False: not looked up yet
        self._resume_state: dict | None = None
        self._batches_per_epoch = 0   # set by train_dataloader()

    def split_dir(self, stage: str) -> Path:
        return self.root / self.splits[stage]

    @property
    def tokenizer(self) -> TextTokenizer | None:
        """The text tokenizer (``tokenizer`` or ``root/tokenizer.model``), None without one."""
        if self._tokenizer is False:
            self._tokenizer = find_tokenizer(self.root, self.tokenizer_path, self.text_max_tokens)
        return self._tokenizer

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _decoder(self, crop: TimeCrop) -> partial:
        return partial(_decode_or_skip, spec=self.spec, crop=crop, tokenizer=self.tokenizer)

    def _eval_pipeline(self, stage: str) -> wds.WebDataset:
        urls = shard_urls(self.split_dir(stage))
        decode = partial(_decode_eval, seed=self.seed, spec=self.spec, crop=self.eval_crop, tokenizer=self.tokenizer)
        # Split by *sample* across ranks, not by shard: a small eval split with fewer shards than ranks
        # would otherwise leave a rank with no batch and deadlock the epoch-end metric reduction.
        dataset = wds.WebDataset(urls, shardshuffle=False, nodesplitter=lambda src: src, empty_check=False)
        return dataset.compose(_every_nth_for_rank).map(decode).select(lambda s: s is not None)

    def _eval_loader(self, stage: str) -> DataLoader:
        return DataLoader(self._eval_pipeline(stage), batch_size=self.eval_batch_size, num_workers=self.num_workers,
                          collate_fn=collate)

    # --- resumable position in the training stream ---------------------------------------------
    def _readers(self) -> int:
        return self._rank_and_world()[1] * max(1, self.num_workers)

    def state_dict(self) -> dict:
        """Epoch and batches consumed in it (from the trainer's loop progress at checkpoint time), and the
        number of shard readers, which must match for a resumed epoch to replay exactly.

        The position comes from the total of batches consumed: when ``max_steps`` stops a run mid-epoch,
        Lightning counts that epoch as processed, so its epoch counter would send a resumed run to the
        start of the next epoch, past the clips the uninterrupted run would have seen. At an epoch's last
        batch, before Lightning has closed the epoch, a resumed Lightning re-enters that epoch: the position
        then stays "that epoch, all of it consumed", so the re-entry reads nothing and the next epoch is next.
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        loop = trainer.fit_loop
        closed = loop.epoch_progress.current.processed
        if not self._batches_per_epoch:  # no training loader built yet
            return {"epoch": closed, "batches": loop.epoch_loop.batch_progress.current.processed,
                    "readers": self._readers()}
        epoch, batches = divmod(loop.epoch_loop.batch_progress.total.processed, self._batches_per_epoch)
        if batches == 0 and epoch > closed:
            epoch, batches = epoch - 1, self._batches_per_epoch
        return {"epoch": epoch, "batches": batches, "readers": self._readers()}

    def load_state_dict(self, state: dict) -> None:
        self._resume_state = dict(state)

    def train_dataloader(self) -> DataLoader:
        urls = shard_urls(self.split_dir("train"))
        index = read_index(self.split_dir("train"))
        stored = index.get("spec", {}).get("duration")
        if isinstance(stored, int | float) and stored + 1e-6 < self.spec.duration:
            log.warning("train clips last %.2f s, crops %.2f s: every clip is padded (see the batch masks)",
                        stored, self.spec.duration)
        rank, world = self._rank_and_world()
        readers = self._readers()
        if len(urls) < readers:
            log.warning("%d train shards for %d readers (ranks x workers): readers share shards; write more, "
                        "smaller shards for disjoint reading", len(urls), readers)
        epoch = self.samples_per_epoch or index.get("samples", 1000)
        # The epoch is global: divided over ranks and workers, in whole batches.
        per_worker = max(1, epoch // (readers * self.batch_size)) * self.batch_size
        self._batches_per_epoch = max(1, self.num_workers) * per_worker // self.batch_size   # this rank's
        stream = TrainStream(urls, decode=self._decoder(self.train_crop), seed=self.seed,
                             shuffle_buffer=self.shuffle_buffer, samples_per_worker=per_worker,
                             batch_size=self.batch_size, rank=rank, world_size=world)
        resume = self._resume_state or {}
        if resume.get("readers", readers) != readers:
            log.warning("resuming with %d shard readers instead of %d (ranks x workers changed): the resumed epoch "
                        "skips as many batches but not the same clips", readers, resume["readers"])
        return EpochLoader(stream, start_epoch=resume.get("epoch", 0), skip_batches=resume.get("batches", 0),
                           batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=collate,
                           drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
