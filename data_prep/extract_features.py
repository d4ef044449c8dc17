"""Run a frozen pretrained backbone over a shard set once and store its per-frame features beside each clip.

    python data_prep/extract_features.py root=data/synthetic [out=DIR] [device=cuda]
    python data_prep/extract_features.py root=DIR spec.image_size=224 model/visual_encoder=pretrained \
        model/visual_encoder/backbone=open_clip model.visual_encoder.backbone.weights=/models/DFN5B-CLIP-ViT-H-14-384

Takes the same ``spec.*`` and ``model/visual_encoder`` overrides as ``train.py``: the features are the ones that
model's encoder would compute from the loader's frames. Each shard gains ``features.NAME.npy`` (float16, one row
per stored frame), written atomically; a rerun skips finished shards; ``index.json`` records the backbone's
identity and training refuses features of another backbone (v2a/data/visual_features.py). Training then reads
them instead of decoding video and running the backbone (docs/benchmarks.md, "cached features").
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig

from v2a.conf import CONFIG_DIR, exit_if_invalid
from v2a.data.frames_npy import rewrite_root
from v2a.data.visual_features import extract_folder

log = logging.getLogger("extract_features")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="data_prep/features")
def main(cfg: DictConfig) -> None:
    exit_if_invalid(cfg)
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          "cpu" if cfg.device == "auto" else cfg.device)
    try:
        spec = instantiate(cfg.spec)
        backbone = instantiate(cfg.model.visual_encoder.backbone, _convert_="all").to(device)
        root = Path(to_absolute_path(cfg.root))
        out = Path(to_absolute_path(cfg.out)) if cfg.out else None
        extract = partial(extract_folder, backbone=backbone, spec=spec, device=device, clips=int(cfg.clips),
                          overwrite=bool(cfg.overwrite))
        log.info("extracting %s features (%d-d, frames at %d px -> %d px) on %s", backbone.name, backbone.dim,
                 spec.image_size, backbone.image_size, device)
        indexes = rewrite_root(root, out, lambda src, dst: extract(src, dst), splits=tuple(cfg.splits))
    except (FileNotFoundError, ImportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for split, index in indexes.items():
        log.info("%s: %d clips in %d shards with features.%s.npy", split, index["samples"], len(index["shards"]),
                 backbone.name)


if __name__ == "__main__":
    main()
