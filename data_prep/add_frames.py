"""Rewrite a shard set with pre-extracted frames (frames.npy), atomically and resumably.

    python data_prep/add_frames.py root=data/synthetic out=data/synthetic_frames [keep_mp4=true] [workers=2]

The loader uses frames.npy when a sample has it and skips H.264 decoding (see docs/benchmarks.md, "loader").
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from v2a.conf import CONFIG_DIR
from v2a.data.frames_npy import add_frames_to_root

log = logging.getLogger("add_frames")
CONF_DIR = str(CONFIG_DIR / "data_prep")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="frames")
def main(cfg: DictConfig) -> None:
    try:
        indexes = add_frames_to_root(
            Path(to_absolute_path(cfg.root)), Path(to_absolute_path(cfg.out)) if cfg.out else None,
            splits=tuple(cfg.splits), keep_mp4=bool(cfg.keep_mp4), workers=int(cfg.workers),
        )
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for split, index in indexes.items():
        log.info("%s: %d clips in %d shards with frames.npy", split, index["samples"], len(index["shards"]))


if __name__ == "__main__":
    main()
