"""A resumed run continues its logger runs: the same wandb run id, TensorBoard and CSV version folders.

:func:`continue_logger_runs` edits the ``logger`` config before the loggers are built
(:func:`v2a.training.run.train`): wandb gets the id stored in ``RUN/wandb_run_id`` (a new one, stored, on a
fresh start; ``resume: allow``); when resuming from this run folder's checkpoint, TensorBoard and CSV write
into their latest ``version_N`` folder, and from the resumed step on (``purge_step``) what an interrupted
run had logged after its checkpoint is dropped (TensorBoard hides it, the CSV file loses those rows).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import uuid
from pathlib import Path

from lightning_fabric.loggers.logger import rank_zero_experiment
from omegaconf import DictConfig, open_dict
from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

log = logging.getLogger(__name__)

WANDB_ID_FILE = "wandb_run_id"


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued, not deleted (its rows
    from ``purge_step`` on are dropped first)."""

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        super().__init__(log_dir=log_dir)
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as file:
            reader = csv.DictReader(file)
            self.metrics_keys = list(reader.fieldnames or [])
            rows = list(reader)
        if purge_step is not None:
            kept = [r for r in rows if not r.get("step") or int(float(r["step"])) < purge_step]
            if len(kept) != len(rows):
                with open(self.metrics_file_path, "w", newline="") as file:
                    writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                    writer.writeheader()
                    writer.writerows(kept)

    def _check_log_dir_exists(self) -> None:
        pass  # an existing metrics.csv is this run's own, to continue


class CSVLogger(LightningCSVLogger):
    """Lightning's ``CSVLogger`` that continues an existing ``metrics.csv`` (a resumed run)."""

    def __init__(self, *args, purge_step: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.purge_step = purge_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir, purge_step=self.purge_step)
        return self._experiment


def latest_version(folder: Path) -> int | None:
    versions = [int(m.group(1)) for p in folder.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return max(versions) if versions else None


def wandb_run_id(run_dir: Path, resuming: bool) -> str:
    """This run folder's wandb id when resuming (and one was stored), else a new one, stored."""
    path = run_dir / WANDB_ID_FILE
    if resuming and path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:12]   # wandb ids: letters and digits
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def continue_logger_runs(cfg: DictConfig, resume_step: int | None) -> None:
    """Point the configured loggers at this run folder's logger runs (module docstring).

    ``resume_step``: the logging step the run resumes at (None: a fresh start, or a resume from a checkpoint
    of another folder, which starts new logger runs).
    """
    loggers = cfg.get("logger")
    if not loggers:
        return
    run_dir = Path(cfg.paths.output_dir)
    resuming = resume_step is not None
    with open_dict(loggers):
        for node in loggers.values():
            if not isinstance(node, DictConfig) or "_target_" not in node:
                continue
            target = str(node._target_)
            if target.endswith("WandbLogger"):
                if not node.get("id") and not node.get("version"):
                    node.id = wandb_run_id(run_dir, resuming)
                    log.info("wandb run id %s (%s)", node.id, "continued" if resuming else "new")
                node.resume = node.get("resume") or "allow"
            elif target.endswith(("TensorBoardLogger", "CSVLogger")) and resuming:
                if node.get("version") is None:
                    latest = latest_version(Path(node.save_dir) / str(node.get("name") or "lightning_logs"))
                    if latest is not None:
                        node.version = latest
                if target.endswith("TensorBoardLogger") or target.endswith("v2a.training.loggers.CSVLogger"):
                    node.purge_step = resume_step


def close_loggers(loggers: list, status: str) -> None:
    """Finalize every logger; a wandb run is also finished (Lightning leaves it open for reuse in the
    process, so the next run of the same process would log into it), and wandb's service process stopped: left
    running it keeps a core busy until the process that trained exits (a sweep, a notebook, the test suite)."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        logger.finalize(status)
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=0 if status in ("success", "preempted") else 1)
        wandb.teardown()
