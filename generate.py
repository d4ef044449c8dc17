"""Give a silent video a soundtrack:  python generate.py video=IN.mp4 ckpt=CKPT out=OUT.mp4"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from v2a.conf import CONFIG_DIR, exit_if_invalid
from v2a.generation.entry import run_generate


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
def main(cfg: DictConfig) -> None:
    exit_if_invalid(cfg)  # impossible values: one line, exit code 2
    status = run_generate(cfg)
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
