"""Evaluate a checkpoint on held-out data:  python evaluate.py ckpt=CKPT out=DIR [data=synthetic | data.root=SHARDS]"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from v2a.evaluation.job import evaluate, format_metrics
from v2a.inference.loading import CheckpointError
from v2a.utils.cli import require

log = logging.getLogger("evaluate")


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    require(cfg, "ckpt", "out")
    options = OmegaConf.to_container(cfg, resolve=True)
    options.pop("paths", None)
    data = options.pop("data", None)
    try:
        metrics = evaluate(data=data["root"] if isinstance(data, dict) else data, **options)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(format_metrics(metrics), flush=True)
    print(f"metrics: {cfg.out}/metrics.json", flush=True)
    return metrics["sync/onset_f1"]


if __name__ == "__main__":
    main()
