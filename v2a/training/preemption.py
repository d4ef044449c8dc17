"""Stop cleanly on SIGTERM / SIGUSR1: a resume checkpoint at a batch boundary, then hand over for requeue.

A SLURM job reaching its time limit gets the signal its launcher asked for (``v2a/conf/hydra/launcher/slurm.yaml``:
SIGUSR1 ``signal_delay_s`` before the limit), and a preempted or cancelled one gets SIGTERM. The signal handler
only raises a flag; at the end of the current training batch — where Lightning's own periodic checkpoints are
taken, so the data position, EMA and loop counters are consistent — every rank agrees to stop, the full resume
state is written to ``checkpoints/last.ckpt``, the batch's metrics reach the loggers, and the fit ends before
the next batch or validation with Lightning's ``SIGTERMException`` (what its own SIGTERM handling raises: no
end-of-training hooks). :func:`v2a.training.run.train` then
skips the end-of-training work (final export, evaluation), closes the loggers and calls
:meth:`Preemption.hand_over`: the handler that was installed before training (submitit's, which requeues the
job) runs. The requeued job resumes from ``last.ckpt`` (``ckpt_path=auto``), continuing the same logger runs.

Lightning's own SLURM auto-requeue (``SLURMEnvironment(auto_requeue=True)``) saves from inside the signal
handler, in the middle of a step; a resume from such a checkpoint does not replay the run exactly, so it is
not used.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


def _signal(name: str | int) -> signal.Signals:
    if isinstance(name, int):
        return signal.Signals(name)
    name = name.upper()
    return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]


class Preemption(pl.Callback):
    """On any of ``signals``: save the resume checkpoint after the current batch and stop training.

    ``preempted_at`` is the step it stopped at (None while running normally); :func:`was_preempted` tells
    the other callbacks to skip their end-of-training work.
    """

    def __init__(self, *, signals: tuple[str, ...] | list[str] = ("SIGTERM", "SIGUSR1"), filename: str = "last.ckpt") -> None:
        self.signals = tuple(_signal(s) for s in signals)
        self.filename = filename
        self.received: signal.Signals | None = None
        self.preempted_at: int | None = None
        self.checkpoint: Path | None = None
        self._outer: dict[signal.Signals, object] = {}

    # --- signals ----------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
            log.warning("received %s: saving a resume checkpoint after this batch, then stopping",
                        self.received.name)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # the handlers from before training (submitit's requeue handler under SLURM), for hand_over()
        self._outer = {s: signal.getsignal(s) for s in self.signals}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning registered its own (its SIGTERM handler would raise out of the loop mid-epoch).
        if threading.current_thread() is not threading.main_thread():
            log.warning("not the main thread: SIGTERM/SIGUSR1 stop the run without a resume checkpoint")
            return
        for s in self.signals:
            signal.signal(s, self._on_signal)

    def _restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s in self.signals:
            if signal.getsignal(s) == self._on_signal:
                signal.signal(s, self._outer.get(s) or signal.SIG_DFL)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    # --- the stop ---------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:  # a signal reaches the ranks at different batches: stop together
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop or self.preempted_at is not None:
            return
        folder = Path(trainer.checkpoint_callback.dirpath) if trainer.checkpoint_callback is not None \
            else Path(trainer.default_root_dir) / "checkpoints"
        self.checkpoint = folder / self.filename
        trainer.save_checkpoint(self.checkpoint)  # every rank (collective under FSDP); rank 0 writes
        self.preempted_at = trainer.global_step
        log.warning("preempted at step %d: resume state saved to %s", trainer.global_step, self.checkpoint)

    def _stop_if_preempted(self) -> None:
        # Not `trainer.should_stop`, which runs a validation first (time the job may not have left).
        if self.preempted_at is not None:
            raise SIGTERMException()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._stop_if_preempted()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._stop_if_preempted()

    def hand_over(self) -> None:
        """After the loggers are closed: run the handler that was installed before training for the signal
        received (submitit's requeues the job and exits); without one, return (the process exits cleanly)."""
        if self.received is None:
            return
        handler = self._outer.get(self.received)
        if callable(handler):
            handler(int(self.received), None)


def find_preemption(trainer: pl.Trainer) -> Preemption | None:
    return next((c for c in trainer.callbacks if isinstance(c, Preemption)), None)


def was_preempted(trainer: object) -> bool:
    """Whether a :class:`Preemption` callback stopped this trainer's fit."""
    callbacks = getattr(trainer, "callbacks", None) or []
    return any(isinstance(c, Preemption) and c.preempted_at is not None for c in callbacks)
