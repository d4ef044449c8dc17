"""Streaming a shard set without Lightning: evaluation splits, the training stream, batches of one split.

:class:`ShardStreams` holds everything about reading one or more shard roots (``ROOT/{train,val,test}``):
the clip grid, the sample decoder (video + audio or audio only, :mod:`v2a.data.decoders`), the crops, the
text tokenizer and the loader sizes. Evaluation and generation iterate a split with it directly
(:func:`split_batches`); training wraps it in :class:`v2a.data.datamodule.ShardDataModule`, which adds
the trainer's rank and the resumable position.

Training is resampled (each rank and worker reads its own disjoint shards, see
:mod:`v2a.data.train_stream`) with an explicit epoch length in whole batches, which keeps batch counts
equal across ranks. Evaluation splits are read once, in order, split by sample across ranks and cut by
``eval_crop`` with a generator seeded by the clip's key: deterministic.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path

import webdataset as wds
from torch.utils.data import DataLoader

from v2a.data.crops import RandomCrop, StartCrop, TimeCrop
from v2a.data.decode import collate
from v2a.data.decoders import SampleDecoder, VideoAudioDecoder
from v2a.data.shard_writer import read_index, shard_urls
from v2a.data.train_stream import EpochLoader, TrainStream
from v2a.models.backbones import plain
from v2a.shapes import ClipSpec
from v2a.text.tokens import TextTokenizer, find_tokenizer

log = logging.getLogger(__name__)

DEFAULT_EPOCH = 1000  # samples per training epoch when neither the config nor the shard index says


def _decode_or_skip(sample: dict, rng: random.Random | None = None, *, decoder: SampleDecoder, spec: ClipSpec,
                    crop: TimeCrop, tokenizer: TextTokenizer | None) -> dict | None:
    try:
        return decoder(sample, rng, spec=spec, crop=crop, tokenizer=tokenizer)
    except Exception as error:  # a bad sample is skipped with a reason, never kills a long run
        log.warning("skipping sample %s: %s", sample.get("__key__"), error)
        return None


def skip_damaged_shard(error: Exception) -> bool:
    """webdataset's error handler for reading shards: a truncated or garbage tar (or what is left of it after
    the damage) is skipped with a logged reason, never raised; the samples before the damage are kept."""
    where = error.args[-1] if len(error.args) > 1 and isinstance(error.args[-1], str) else "a shard"
    reason = " ".join(str(error.args[0] if error.args else error).split())
    log.warning("skipping the rest of %s (damaged shard: %s: %s)", where, type(error).__name__, reason)
    return True


def _decode_eval(sample: dict, *, seed: int, **kwargs) -> dict | None:
    # Evaluation crops are a function of the clip alone: the same clip gets the same crop every time.
    return _decode_or_skip(sample, random.Random(f"eval/{seed}/{sample.get('__key__')}"), **kwargs)


def _every_nth_for_rank(samples):
    """Keep samples i with i % world_size == rank (all ranks read the same shards in the same order).

    The rank is webdataset's view: ``RANK``/``WORLD_SIZE`` in the environment, else the process group.
    """
    rank, world, _, _ = wds.utils.pytorch_worker_info()
    for index, sample in enumerate(samples):
        if index % world == rank:
            yield sample


def _is_sample(sample: dict | None) -> bool:
    return sample is not None


def _no_split(urls):
    return urls


class ShardStreams:
    """Loaders over ``root/{train,val,test}`` (``root``: one shard root or a list of them).

    With several roots every split reads all of them: training draws shards from all roots together (a
    root's share is its share of shards), evaluation reads each root's split in turn. With one root and
    ``root/tokenizer.model`` present (or ``tokenizer`` given) batches also carry text token ids.
    """

    def __init__(
        self,
        *,
        root: str | Sequence[str],
        spec: ClipSpec,
        decoder: SampleDecoder | None = None,
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
        visual_features: Mapping | None = None,
    ) -> None:
        roots = [root] if isinstance(root, str | Path) else list(root)
        if not roots:
            raise ValueError("the data needs at least one shard root (data.root)")
        self.roots = [Path(r) for r in roots]
        self.spec = spec
        self.decoder = decoder or VideoAudioDecoder()
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
        # the cached features the model reads ({"name", "identity"}; the ${visual_features:} resolver): read instead
        # of decoding video where the shards hold them (v2a/data/visual_features.py)
        self.visual_features = plain(visual_features) if visual_features else None

    @property
    def root(self) -> Path:
        """The shard root (the first one when there are several)."""
        return self.roots[0]

    def split_dirs(self, stage: str) -> list[Path]:
        return [root / self.splits[stage] for root in self.roots]

    def urls(self, stage: str) -> list[str]:
        """Shard paths of one split over all roots (a missing folder is a clear error)."""
        return [url for folder in self.split_dirs(stage) for url in shard_urls(folder)]

    @property
    def tokenizer(self) -> TextTokenizer | None:
        """The text tokenizer (``tokenizer``, or ``root/tokenizer.model`` of a single root), None without one."""
        if self._tokenizer is False:
            if self.tokenizer_path is None and len(self.roots) > 1:
                self._tokenizer = None  # roots may hold different tokenizers: only an explicit one is used
            else:
                self._tokenizer = find_tokenizer(self.root, self.tokenizer_path, self.text_max_tokens)
        return self._tokenizer

    def _decode(self, crop: TimeCrop, stage: str) -> dict:
        decoder = self.decoder.for_folders(self.split_dirs(stage), self.spec, self.visual_features)
        return {"decoder": decoder, "spec": self.spec, "crop": crop, "tokenizer": self.tokenizer}

    # --- evaluation -----------------------------------------------------------------------------
    def eval_dataset(self, stage: str) -> wds.WebDataset:
        """One split of every root, in order, split by sample across ranks."""
        # Split by *sample* across ranks, not by shard: a small eval split with fewer shards than ranks
        # would otherwise leave a rank with no batch and deadlock the epoch-end metric reduction.
        dataset = wds.WebDataset(self.urls(stage), shardshuffle=False, nodesplitter=_no_split, empty_check=False,
                                 handler=skip_damaged_shard)
        decode = partial(_decode_eval, seed=self.seed, **self._decode(self.eval_crop, stage))
        return dataset.compose(_every_nth_for_rank).map(decode).select(_is_sample)

    def eval_loader(self, stage: str) -> DataLoader:
        return DataLoader(self.eval_dataset(stage), batch_size=self.eval_batch_size, num_workers=self.num_workers,
                          collate_fn=collate)

    # --- training -------------------------------------------------------------------------------
    def readers(self, world_size: int) -> int:
        """Shard readers of a training epoch: ranks x workers."""
        return world_size * max(1, self.num_workers)

    def samples_per_worker(self, world_size: int) -> int:
        """Samples each reader yields per epoch: the global epoch divided over the readers, in whole batches."""
        epoch = self.samples_per_epoch or sum(read_index(d).get("samples", 0) for d in self.split_dirs("train"))
        return max(1, (epoch or DEFAULT_EPOCH) // (self.readers(world_size) * self.batch_size)) * self.batch_size

    def batches_per_epoch(self, world_size: int) -> int:
        """Training batches one rank takes per epoch."""
        return max(1, self.num_workers) * self.samples_per_worker(world_size) // self.batch_size

    def train_loader(self, *, rank: int = 0, world_size: int = 1, start_epoch: int = 0,
                     skip_batches: int = 0) -> EpochLoader:
        """The endless, resumable training stream of rank ``rank``: epochs from ``start_epoch``, the first
        one without its first ``skip_batches`` batches (the same clips and crops an uninterrupted run saw)."""
        urls = self.urls("train")
        for folder in self.split_dirs("train"):
            stored = read_index(folder).get("spec", {}).get("duration")
            if isinstance(stored, int | float) and stored + 1e-6 < self.spec.duration:
                log.warning("%s: clips last %.2f s, crops %.2f s: every clip is padded (see the batch masks)",
                            folder, stored, self.spec.duration)
        readers = self.readers(world_size)
        if len(urls) < readers:
            log.warning("%d train shards for %d readers (ranks x workers): readers share shards; write more, "
                        "smaller shards for disjoint reading", len(urls), readers)
        decode = partial(_decode_or_skip, **self._decode(self.train_crop, "train"))
        stream = TrainStream(urls, decode=decode, seed=self.seed, shuffle_buffer=self.shuffle_buffer,
                             samples_per_worker=self.samples_per_worker(world_size), batch_size=self.batch_size,
                             rank=rank, world_size=world_size)
        return EpochLoader(stream, start_epoch=start_epoch, skip_batches=skip_batches, batch_size=self.batch_size,
                           num_workers=self.num_workers, collate_fn=collate, drop_last=True)


def split_batches(root: str | Path, split: str, spec: ClipSpec, batch_size: int, max_clips: int | None = None,
                  **options) -> Iterator[dict]:
    """Batches of ``root/split`` in shard order (every clip once, cut at its start), stopping after
    ``max_clips`` clips; ``options`` are :class:`ShardStreams` arguments (``decoder``, ``tokenizer``, ...)."""
    streams = ShardStreams(root=str(root), spec=spec, eval_batch_size=batch_size, num_workers=0, test_split=split,
                           **options)
    seen = 0
    for batch in streams.eval_loader("test"):
        if max_clips is not None and seen >= max_clips:
            return
        if max_clips is not None and seen + len(batch["key"]) > max_clips:
            keep = max_clips - seen
            batch = {k: v[:keep] for k, v in batch.items()}
        seen += len(batch["key"])
        yield batch
