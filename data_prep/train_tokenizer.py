"""Train the sentencepiece tokenizer of a shard set from its captions, transcripts and negative captions.

    python data_prep/train_tokenizer.py root=data/synthetic [vocab_size=8000] [splits=[train]]

Writes ROOT/tokenizer.model (atomically) and ROOT/tokenizer.json; the data loader then adds token ids
(``caption_tokens``, ``transcript_tokens``, ``negative_caption_tokens`` and their masks) to every batch.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from v2a.conf import CONFIG_DIR
from v2a.data.tokenizer_training import train_shard_tokenizer

log = logging.getLogger("train_tokenizer")
CONF_DIR = str(CONFIG_DIR / "data_prep")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="tokenizer")
def main(cfg: DictConfig) -> None:
    try:
        info = train_shard_tokenizer(
            Path(to_absolute_path(cfg.root)), splits=list(cfg.splits), fields=list(cfg.fields),
            out=Path(to_absolute_path(cfg.out)) if cfg.out else None, vocab_size=int(cfg.vocab_size),
            model_type=cfg.model_type, character_coverage=float(cfg.character_coverage),
            max_sentences=int(cfg.max_sentences), seed=int(cfg.seed),
        )
    except (FileNotFoundError, ValueError, RuntimeError) as error:  # RuntimeError: sentencepiece's own errors
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"tokenizer: {info['vocab_size']} pieces from {info['sentences']} texts ({info['counts']})")


if __name__ == "__main__":
    main()
