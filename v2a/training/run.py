"""The training job: compose -> seed -> instantiate -> fit -> return the sweep metric."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN/Inf; the run stopped without overwriting the last good checkpoint."""


def instantiate_dict(cfg: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a config group that holds named objects."""
    if not cfg:
        return []
    return [instantiate(node) for node in cfg.values() if isinstance(node, DictConfig) and "_target_" in node]


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``auto`` -> this run folder's last.ckpt when it exists (resume), else a fresh start."""
    if cfg.ckpt_path in (None, "", "null"):
        return None
    if cfg.ckpt_path == "auto":
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        return str(last) if last.exists() else None
    if not Path(cfg.ckpt_path).exists():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path} does not exist")
    return str(cfg.ckpt_path)


def train(cfg: DictConfig) -> dict:
    """Run one training job; returns the trainer's final metrics and the checkpoint path."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = instantiate_dict(cfg.get("callbacks"))
    loggers = instantiate_dict(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    n_params = sum(p.numel() for p in model.net.parameters())
    log.info("network parameters: %.2f M", n_params / 1e6)
    status = "failed"
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        status = "success"
    except FloatingPointError as error:
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise TrainingDiverged(f"{error}; training stopped, {kept} (lower model.optimizer.lr or check the data)") from error
    finally:
        for logger in loggers:
            logger.finalize(status)
    checkpoint = ""
    if trainer.checkpoint_callback is not None:
        # Periodic checkpoints need not fall on the final step: always leave the final state in last.ckpt.
        checkpoint = str(Path(trainer.checkpoint_callback.dirpath) / "last.ckpt")
        trainer.save_checkpoint(checkpoint)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {"metrics": metrics, "checkpoint": checkpoint}
