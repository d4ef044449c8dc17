"""Turn your own videos into webdataset shards of fixed-length clips.

    python data_prep/make_shards.py input=DIR_OR_MANIFEST out=DIR [workers=N] [shard_size=N] [no_audio=skip]

Reruns resume (finished shards are kept); skipped inputs and why are listed in DIR/index.json.
``input=`` and ``out=`` are taken literally: a folder name may hold any character (quote it for the shell).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import fields
from pathlib import Path

import hydra
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig

from v2a.conf import CONFIG_DIR, exit_if_invalid
from v2a.conf.arguments import prepare_command_line
from v2a.data.ingest import ClipOptions, IngestError, TextPolicy, ingest

log = logging.getLogger("make_shards")
CONF_DIR = str(CONFIG_DIR / "data_prep")


def _options(cls, cfg: DictConfig):
    """A dataclass of options from the config's top-level keys of the same names."""
    return cls(**{f.name: cfg[f.name] for f in fields(cls) if f.name in cfg})


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="shards")
def main(cfg: DictConfig) -> None:
    exit_if_invalid(cfg)  # e.g. a spec whose tokens do not align with frames: one line, exit code 2
    out = Path(to_absolute_path(cfg.out))
    try:
        spec, clip_options, text_policy = instantiate(cfg.spec), _options(ClipOptions, cfg), _options(TextPolicy, cfg)
    except (TypeError, ValueError) as error:
        print(f"error: bad settings: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        index = ingest(
            Path(to_absolute_path(cfg.input)), out, spec, clip_options=clip_options, text_policy=text_policy,
            shard_size=int(cfg.shard_size), workers=int(cfg.workers), prefix=cfg.prefix,
        )
    except IngestError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if not index["complete"]:
        missing = index["planned"]["shards"] - len(index["shards"])
        print(f"error: {missing} shard(s) failed (see the log above); rerun the same command to retry them",
              file=sys.stderr)
        sys.exit(1)
    counts = index["counts"]
    log.info("%d clips in %d shards at %s; skipped %s; notes %s (details: %s)", index["samples"], len(index["shards"]),
             out, counts["skipped"] or "none", counts["notes"] or "none", out / "index.json")


if __name__ == "__main__":
    sys.argv[1:] = prepare_command_line(CONF_DIR, "shards", ("input", "out"))
    main()
