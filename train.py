"""Train a v2a model:  python train.py experiment=v2a_tiny   (see v2a/conf/ for every option)."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from v2a.checkpoints.loading import CheckpointError
from v2a.conf import CONFIG_DIR, ConfigError, exit_if_invalid
from v2a.training.run import TrainingDiverged, train

log = logging.getLogger("train")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    exit_if_invalid(cfg)  # impossible values: one line, exit code 2, before anything is built
    try:
        result = train(cfg)
    except (TrainingDiverged, FileNotFoundError, CheckpointError, ConfigError) as error:
        # user-facing failures: one clear line, no traceback
        log.error("%s", error)
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"checkpoint: {result['checkpoint']}", flush=True)
    metric = result["metrics"].get(cfg.get("optimized_metric", ""))
    return metric


if __name__ == "__main__":
    main()
