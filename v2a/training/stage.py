"""The plumbing every training stage shares: run config in checkpoints, optimizer and schedule from
partial factories, per-step seeded randomness, and a stop on a non-finite loss."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch

Factory = Callable[..., Any]


class StageModule(pl.LightningModule):
    """Base of the V2A, sync, vocoder and classifier LightningModules.

    ``optimizer`` and ``scheduler`` are Hydra ``_partial_`` factories; ``run_config`` (the resolved
    Hydra config, set by ``train.py``) is stored in every checkpoint as ``v2a_config`` so a checkpoint
    can be rebuilt without the config files it came from.
    """

    def __init__(self, *, optimizer: Factory | None = None, scheduler: Factory | None = None, seed: int = 0) -> None:
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.seed = seed
        self.run_config: dict | None = None

    # --- randomness -------------------------------------------------------------------------
    def step_generator(self, batch_idx: int | None = 0) -> torch.Generator:
        """The generator of this (step, micro-batch, rank), on the CPU: portable across devices.

        Seeded from (seed, rank, step[, batch_idx]) at every step, so a resumed run, on any rank, draws
        exactly what the uninterrupted run drew, with no generator state to carry.
        """
        parts = (self.seed, self.global_rank, self.global_step) + (() if batch_idx is None else (batch_idx,))
        return torch.Generator().manual_seed(hash(parts) % (2**63))

    def check_finite(self, loss: torch.Tensor, what: str = "training loss") -> torch.Tensor:
        """``loss``, or a FloatingPointError that stops training before a bad checkpoint is written."""
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite {what} {loss.item()} at step {self.global_step}")
        return loss

    # --- optimisation -----------------------------------------------------------------------
    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        """What the optimizer updates (frozen parameters are left out)."""
        return [p for p in self.parameters() if p.requires_grad]

    def scheduled(self, optimizer: torch.optim.Optimizer) -> Any:
        """``optimizer`` with the configured per-step schedule, in Lightning's format."""
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": "step"}}

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError(f"{type(self).__name__} has no optimizer configured (model.optimizer)")
        return self.scheduled(self.optimizer_factory(params=self.trainable_parameters()))

    # --- checkpoint state -------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["v2a_config"] = self.run_config
