"""A copy of a v2a_tiny export whose generation settings (vocoder, sampler) are the current config's defaults.

    .venv/bin/python bench/export_with_defaults.py RUN/export OUT_EXPORT [override ...]

The network is not touched (the vocoder and the sampler are not trained with it): the copy is what the same
training run would export today, so the speed benches can time a model with today's default settings.
Overrides are Hydra overrides of ``experiment=v2a_tiny`` (``spec.mel_frames_per_token=4`` ...).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def main() -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from v2a.conf import CONFIG_DIR

    source, target, overrides = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    config = json.loads((source / "config.json").read_text())
    spec = config["spec"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=v2a_tiny", *overrides] +
                      [f"spec.{k}={v}" for k, v in spec.items() if k != "_target_"])
    model = OmegaConf.to_container(cfg.model, resolve=True)
    config["model"]["vocoder"], config["model"]["sampler"] = model["vocoder"], model["sampler"]
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name != "config.json":
            shutil.copy(item, target / item.name)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    print(f"{target}: vocoder {model['vocoder']['_target_']}, sampler {model['sampler']}")


if __name__ == "__main__":
    main()
