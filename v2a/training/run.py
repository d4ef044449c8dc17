"""The training job: compose -> seed -> instantiate -> fit -> return the sweep metric."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from v2a.training.finetune import finetune_config
from v2a.training.loggers import close_loggers, continue_logger_runs
from v2a.training.preemption import find_preemption

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


def _flatten(tree: object, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict):
        items: dict[str, object] = {}
        for key, value in tree.items():
            items.update(_flatten(value, f"{prefix}{key}."))
        return items
    return {prefix[:-1]: tree}


# Keys that legitimately change between a run and its resumption.
RESUME_FREE_KEYS = ("trainer.max_steps", "ckpt_path", "paths.", "trainer.enable_progress_bar", "logger.")


def config_differences(saved: dict, current: dict) -> list[str]:
    """Dotted keys whose values differ between a checkpoint's config and the current one."""
    old, new = _flatten(saved or {}), _flatten(current)
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k, "<absent>") != new.get(k, "<absent>"))
    return [k for k in keys if not k.startswith(RESUME_FREE_KEYS)]


def warn_on_config_mismatch(ckpt_path: str | dict, current: dict) -> list[str]:
    """Log a warning naming every key where the resumed checkpoint's config differs from this run's
    (``ckpt_path``: the checkpoint's path, or the loaded checkpoint)."""
    from v2a.checkpoints.loading import load_checkpoint

    checkpoint = ckpt_path if isinstance(ckpt_path, dict) else load_checkpoint(ckpt_path)
    saved = checkpoint.get("v2a_config") or {}
    differences = config_differences(saved, current)
    if differences:
        old, new = _flatten(saved), _flatten(current)
        details = ", ".join(f"{k} (checkpoint {old.get(k, '<absent>')!r}, now {new.get(k, '<absent>')!r})"
                            for k in differences[:20])
        log.warning("resuming with a config that differs from the checkpoint's at %d key(s): %s",
                    len(differences), details)
    return differences


def per_device_batch(global_batch: int, world_size: int, accumulate: int) -> int:
    """The per-device batch that makes ``global_batch``; a clear error when it does not divide."""
    parts = world_size * accumulate
    if global_batch <= 0 or global_batch % parts:
        raise ValueError(f"data.global_batch_size={global_batch} is not divisible by world size {world_size} x "
                         f"trainer.accumulate_grad_batches={accumulate} (= {parts})")
    return global_batch // parts


def logging_step(checkpoint: dict) -> int:
    """The first step a run resumed from ``checkpoint`` logs at: its global step (with one optimizer; a stage
    with two, like the vocoder GAN, counts two per batch, so the step is past what its loggers hold and nothing
    logged is dropped)."""
    return int(checkpoint.get("global_step", 0))


def in_run_folder(cfg: DictConfig, ckpt_path: str | None) -> bool:
    """Whether ``ckpt_path`` is one of this run folder's checkpoints (so its logger runs continue)."""
    if not ckpt_path:
        return False
    return Path(cfg.paths.output_dir).resolve() in Path(ckpt_path).resolve().parents


def train(cfg: DictConfig) -> dict:
    """Run one training job; returns the trainer's final metrics and the checkpoint path."""
    if cfg.get("finetune") is not None:   # experiment=finetune: the model's architecture is the init's
        cfg = finetune_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = instantiate_dict(cfg.get("callbacks"))
    ckpt_path = resolve_ckpt_path(cfg)
    checkpoint = None
    if ckpt_path:
        from v2a.checkpoints.loading import load_checkpoint

        checkpoint = load_checkpoint(ckpt_path)
    continue_logger_runs(cfg, logging_step(checkpoint) if checkpoint and in_run_folder(cfg, ckpt_path) else None)
    loggers = instantiate_dict(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    global_batch = cfg.get("global_batch_size")
    if global_batch:  # a global batch is the number that matters for the recipe; derive the per-device one
        datamodule.batch_size = per_device_batch(int(global_batch), trainer.world_size, trainer.accumulate_grad_batches)
    log.info("batch: %d per device x %d devices x %d accumulation = %d global", datamodule.batch_size,
             trainer.world_size, trainer.accumulate_grad_batches,
             datamodule.batch_size * trainer.world_size * trainer.accumulate_grad_batches)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
        warn_on_config_mismatch(checkpoint, model.run_config)
    del checkpoint
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("trainable parameters: %.2f M", n_params / 1e6)
    status = "failed"
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        status = "success"
    except SIGTERMException:
        preemption = find_preemption(trainer)
        if preemption is None or preemption.preempted_at is None:
            raise  # Lightning's own SIGTERM stop, before the preemption handler was installed: no checkpoint
        status = "preempted"
    except FloatingPointError as error:
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise TrainingDiverged(f"{error}; training stopped, {kept} (lower model.optimizer.lr or check the data)") from error
    finally:
        close_loggers(loggers, status)
    if status == "preempted":
        # the resume state is saved; nothing else (no export, no evaluation): the job's time is up
        log.warning("stopped by %s at step %d; resume with the same command (ckpt_path=auto): %s",
                    preemption.received.name, preemption.preempted_at, preemption.checkpoint)
        preemption.hand_over()   # under submitit: requeue the job (and exit)
        return {"metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
                "checkpoint": str(preemption.checkpoint), "preempted_at": preemption.preempted_at}
    checkpoint = ""
    if trainer.checkpoint_callback is not None:
        # Periodic checkpoints need not fall on the final step: always leave the final state in last.ckpt.
        checkpoint = str(Path(trainer.checkpoint_callback.dirpath) / "last.ckpt")
        trainer.save_checkpoint(checkpoint, weights_only=False)  # the full resume state
        if hasattr(model, "export_to"):  # each stage knows its export; called on every rank (FSDP gathers)
            model.export_to(Path(trainer.checkpoint_callback.dirpath).parent / "export")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {"metrics": metrics, "checkpoint": checkpoint}
