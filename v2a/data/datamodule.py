"""The one LightningDataModule: streams webdataset shards (train / val / test folders of one or more roots).

What a clip becomes is the ``decoder`` (``data.decoder._target_``): video + audio for the V2A, sync and
classifier stages (:class:`~v2a.data.decoders.VideoAudioDecoder`, the default), audio only for the vocoder
(:class:`~v2a.data.decoders.AudioDecoder`, ``data=vocoder_audio``). The streaming itself is
:class:`~v2a.data.streams.ShardStreams` (no Lightning: inference uses it directly); this module adds the
trainer's rank and world size and the training position saved in every checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from v2a.data.streams import ShardStreams
from v2a.shapes import ClipSpec
from v2a.text.tokens import TextTokenizer

log = logging.getLogger(__name__)


class ShardDataModule(pl.LightningDataModule):
    """Streams ``root/{train,val,test}`` shard folders (``root``: one path or a list), see :class:`ShardStreams`.

    Training is resampled with an explicit epoch length (equal batch counts on every DDP rank) and its
    position (epoch, batches consumed, shard readers) is part of every checkpoint, so a resumed run sees
    the clips and crops the uninterrupted one would have; clips are cut by ``train_crop`` (random by
    default). Evaluation splits are read once, in order, cut by ``eval_crop`` (the clip's start by default).
    """

    def __init__(self, **options: Any) -> None:
        """``options``: :class:`ShardStreams`' keyword arguments (``root``, ``spec``, ``decoder``, ``batch_size``, ...)."""
        super().__init__()
        self.streams = ShardStreams(**options)
        self._resume_state: dict | None = None
        self._batches_per_epoch = 0   # set by train_dataloader()

    # --- what the rest of the house reads (and the training entry sets: batch_size) ----------------
    @property
    def batch_size(self) -> int:
        return self.streams.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.streams.batch_size = value

    @property
    def spec(self) -> ClipSpec:
        return self.streams.spec

    @property
    def root(self) -> Path:
        return self.streams.root

    @property
    def roots(self) -> list[Path]:
        return self.streams.roots

    @property
    def tokenizer(self) -> TextTokenizer | None:
        """The text tokenizer (``tokenizer`` or ``root/tokenizer.model``), None without one."""
        return self.streams.tokenizer

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    # --- resumable position in the training stream ---------------------------------------------
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
        readers = self.streams.readers(self._rank_and_world()[1])
        closed = loop.epoch_progress.current.processed
        if not self._batches_per_epoch:  # no training loader built yet
            return {"epoch": closed, "batches": loop.epoch_loop.batch_progress.current.processed, "readers": readers}
        epoch, batches = divmod(loop.epoch_loop.batch_progress.total.processed, self._batches_per_epoch)
        if batches == 0 and epoch > closed:
            epoch, batches = epoch - 1, self._batches_per_epoch
        return {"epoch": epoch, "batches": batches, "readers": readers}

    def load_state_dict(self, state: dict) -> None:
        self._resume_state = dict(state)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        self._batches_per_epoch = self.streams.batches_per_epoch(world)   # this rank's
        resume = self._resume_state or {}
        readers = self.streams.readers(world)
        if resume.get("readers", readers) != readers:
            log.warning("resuming with %d shard readers instead of %d (ranks x workers changed): the resumed epoch "
                        "skips as many batches but not the same clips", readers, resume["readers"])
        return self.streams.train_loader(rank=rank, world_size=world, start_epoch=resume.get("epoch", 0),
                                         skip_batches=resume.get("batches", 0))

    def val_dataloader(self) -> DataLoader:
        return self.streams.eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.streams.eval_loader("test")
