"""Give a silent video a soundtrack:  python generate.py video=IN.mp4 ckpt=CKPT out=OUT.mp4"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from v2a.generation.job import generate
from v2a.generation.video_input import VideoInputError
from v2a.inference.loading import CheckpointError
from v2a.utils.cli import require

log = logging.getLogger("generate")


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    require(cfg, "video", "ckpt", "out")
    watermark_cfg = cfg.watermark
    options = OmegaConf.to_container(cfg, resolve=True)
    options.pop("watermark")
    watermarker = None if watermark_cfg.get("disabled", False) else instantiate(watermark_cfg)
    if watermarker is None:
        log.warning("watermark disabled (watermark=off): the output will not be marked as generated")
    try:
        results = generate(watermarker=watermarker, **options)
    except (VideoInputError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for result in results:
        print(f"wrote {result['video']} and {result['audio']}")


if __name__ == "__main__":
    main()
