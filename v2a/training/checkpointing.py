"""Checkpoint retention: ``last`` + the best N by a metric + every K steps, each kept one with its export.

Three Lightning ``ModelCheckpoint`` callbacks share ``RUN/checkpoints`` (``v2a/conf/callbacks/default.yaml``):

- ``model_checkpoint``: the resume state ``last.ckpt``, rewritten every ``every_n_train_steps`` (and by
  :class:`v2a.training.preemption.Preemption` on SIGTERM/SIGUSR1); nothing else;
- ``best_checkpoints``: ``step_N.ckpt`` for the ``save_top_k`` best validations by ``monitor`` (written at
  validation ends; one that drops out of the top N is deleted);
- ``kept_checkpoints``: ``step_N.ckpt`` every ``every_n_train_steps`` (K), never deleted (``monitor: step``,
  ``save_top_k: -1``).

Both retained kinds are :class:`RetainedCheckpoint`: each file it keeps gets the stage's inference export in
``RUN/exports/step_N`` (``export_to``: EMA weights + config, no pickle), removed with the file; a file that
one rule drops but the other keeps (a best step that is also a K-th step) stays, with its export. At most
``1 + N + max_steps / K`` resume states and ``N + max_steps / K`` exports are on disk (README).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


class RetainedCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (every option as documented there) that writes an inference export
    beside each checkpoint it keeps (``export_dir/<checkpoint stem>``, when the module has ``export_to``) and
    never deletes a file another :class:`RetainedCheckpoint` of the trainer still keeps."""

    def __init__(self, *, export_dir: str | None = None, **kwargs) -> None:
        kwargs.setdefault("enable_version_counter", False)  # two rules may name the same step: one file
        super().__init__(**kwargs)
        self.export_dir = Path(export_dir) if export_dir else None

    def export_path(self, filepath: str | Path) -> Path | None:
        return self.export_dir / Path(filepath).stem if self.export_dir is not None else None

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        module = trainer.lightning_module
        target = self.export_path(filepath)
        if target is not None and hasattr(module, "export_to"):
            module.export_to(target)  # every rank: a sharded model is gathered collectively; rank 0 writes

    def _kept_elsewhere(self, trainer: pl.Trainer, filepath: str) -> bool:
        return any(other is not self and isinstance(other, RetainedCheckpoint) and filepath in other.best_k_models
                   for other in trainer.checkpoint_callbacks)

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        if self._kept_elsewhere(trainer, filepath):
            return
        super()._remove_checkpoint(trainer, filepath)
        target = self.export_path(filepath)
        if target is not None and trainer.is_global_zero and target.exists():
            shutil.rmtree(target, ignore_errors=True)
