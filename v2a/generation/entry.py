"""The body of ``generate.py`` and ``v2a generate``: a composed config in, files and an exit status out."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from v2a.checkpoints.loading import CheckpointError
from v2a.generation.job import generate
from v2a.generation.outputs import one_line
from v2a.media import MuxError, VideoInputError
from v2a.pipeline.loading import chosen_vocoder
from v2a.utils.cli import plain_options, require

log = logging.getLogger("generate")


def run_generate(cfg: DictConfig, load_pipeline: Callable[..., Any] | None = None) -> int:
    """Generate from a composed ``v2a/conf/generate.yaml``; user errors print one line and return 2; a folder
    run prints a summary and returns 1 when some of its videos failed (each named with why). ``load_pipeline``
    replaces ``V2APipeline.from_pretrained`` (``v2a serve`` keeps its models loaded)."""
    require(cfg, "video", "ckpt", "out")
    vocoder = chosen_vocoder(cfg)
    options = plain_options(cfg, exclude=("watermark", "model"))
    watermark_cfg = cfg.watermark
    if watermark_cfg.get("disabled", False):
        watermarker = None
        log.warning("watermark disabled (watermark=off): the output will not be marked as generated")
    else:
        watermarker = instantiate(watermark_cfg)
    # what the sidecar records of the watermark: its settings, never the key
    settings = {k: v for k, v in OmegaConf.to_container(watermark_cfg, resolve=True).items() if k != "key"}
    try:
        results = generate(watermarker=watermarker, vocoder=vocoder, watermark_settings=settings,
                           load_pipeline=load_pipeline, **options)
    except (VideoInputError, CheckpointError, MuxError, ValueError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug or a broken file deep in a library: still one line (traceback at debug)
        log.debug("traceback", exc_info=True)
        print(f"error: unexpected {one_line(error)}", file=sys.stderr)
        return 1
    for result in results:
        print(f"wrote {result['video']} and {result['audio']} ({result['duration_s']:.2f} s, RTF {result['rtf']:.3f})")
    failed = getattr(results, "failed", [])
    if Path(cfg.video).is_dir():
        print(f"summary: {len(results)} written, {len(failed)} failed")
    for failure in failed:
        print(f"failed: {failure['input']}: {failure['error']}", file=sys.stderr)
    return 1 if failed else 0
