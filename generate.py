"""Give a silent video a soundtrack:  python generate.py video=IN.mp4 ckpt=CKPT out=OUT.mp4

File names may hold any character: the values of the path keys below are taken literally, not as Hydra
override syntax. Quote the whole argument for the shell, nothing more:

    python generate.py "video=Reel (1967) [tape 2], take=3.mp4" ckpt=CKPT "out=out/Reel (1967).mp4"

(a value already in Hydra quotes, ``video='a b.mp4'``, is read as Hydra reads it; ``video=null`` is null).
A folder of videos (``video=DIR out=OUT_DIR``) goes on past a file that fails and ends with a summary;
the exit code is 0 when every video was written, 1 when some failed, 2 for bad usage or input.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from v2a.conf import CONFIG_DIR, exit_if_invalid
from v2a.conf.arguments import prepare_command_line
from v2a.generation.entry import run_generate

# keys whose values are file names or free text: passed literally, whatever characters they hold
PATH_KEYS = ("video", "out", "ckpt", "aligner", "prompt", "negative_prompt", "transcript", "model.vocoder.checkpoint")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
def main(cfg: DictConfig) -> None:
    exit_if_invalid(cfg)  # impossible values: one line, exit code 2
    status = run_generate(cfg)
    if status:
        sys.exit(status)


if __name__ == "__main__":
    sys.argv[1:] = prepare_command_line(CONFIG_DIR, "generate", PATH_KEYS)
    main()
