"""Render the synthetic benchmark into webdataset shards.

    python data_prep/make_synthetic.py out=data/synthetic [splits.train.clips=N] [workers=N]
    python data_prep/make_synthetic.py --config-name synthetic_full out=data/synthetic_full   # all scene kinds

The default config renders the impacts-only benchmark; a config with a ``scene`` (synthetic_full.yaml)
mixes impacts, a fan, a lamp, rain, a music bed and talking heads. Reruns skip finished shards; every
clip is a pure function of (seed, split, clip number).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from v2a.conf import CONFIG_DIR, exit_if_invalid
from v2a.data.synthetic.build import build_split

log = logging.getLogger("make_synthetic")
CONF_DIR = str(CONFIG_DIR / "data_prep")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="synthetic")
def main(cfg: DictConfig) -> None:
    exit_if_invalid(cfg)  # e.g. a spec whose tokens do not align with frames: one line, exit code 2
    spec = instantiate(cfg.spec)
    scene = instantiate(cfg.scene, _convert_="all") if cfg.get("scene") is not None else None
    out = Path(hydra.utils.to_absolute_path(cfg.out))
    for split, split_cfg in cfg.splits.items():
        index = build_split(
            out, split, int(split_cfg.clips), int(cfg.seed) + int(split_cfg.seed_offset), spec,
            shard_size=int(cfg.shard_size), max_objects=int(cfg.max_objects), workers=int(cfg.workers), scene=scene,
            hidden_material_prob=float(cfg.get("hidden_material_prob", 0.0)),
        )
        log.info("%s: %d clips in %d shards at %s", split, index["samples"], len(index["shards"]), out / split)


if __name__ == "__main__":
    main()
