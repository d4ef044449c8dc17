"""Evaluate a checkpoint on held-out data, or compare evaluations:

    python evaluate.py ckpt=CKPT out=DIR [data=synthetic [data.root=SHARDS]] [reuse=true] [classifier=EXPORT]
    python evaluate.py ckpt=CKPT out=DIR model/vocoder=neural model.vocoder.checkpoint=VOCODER_EXPORT
    accelerate launch --multi_gpu --num_processes N evaluate.py ckpt=CKPT out=DIR   (generation split over processes)
    python evaluate.py compare RUN_DIR... [--out DIR]                     (table.md, table.csv, plots)
    python evaluate.py av_benchmark gt=DIR pred=DIR [videos=DIR] weights.panns=PATH ...   (the papers' columns)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from v2a.checkpoints.loading import CheckpointError
from v2a.conf import CONFIG_DIR, exit_if_invalid
from v2a.conf.arguments import prepare_command_line
from v2a.evaluation.job import evaluate, format_metrics
from v2a.pipeline.loading import chosen_vocoder
from v2a.utils.cli import plain_options, require

log = logging.getLogger("evaluate")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    require(cfg, "ckpt", "out")
    exit_if_invalid(cfg)  # impossible values: one line, exit code 2
    watermark_cfg = cfg.get("watermark")
    watermark = None if not watermark_cfg or watermark_cfg.get("disabled", False) else instantiate(watermark_cfg)
    vocoder = chosen_vocoder(cfg)   # resolved later, inside the checkpoint's config
    # data=NAME: only its root is read (its spec, ${spec}, is the checkpoint's business and is not resolved here)
    options = plain_options(cfg, exclude=("paths", "watermark", "model", "data"))
    data = cfg.data.root if OmegaConf.is_dict(cfg.get("data")) else cfg.get("data")
    prompt_following = options.pop("prompt_following", False)
    dialogue = {k: options.pop(k) for k in ("dialogue", "timing", "aligner")}
    try:
        metrics = evaluate(data=data, watermark=watermark, vocoder=vocoder, **options)
        if metrics and prompt_following:
            metrics.update(run_prompt_following(cfg, data))
        if metrics and dialogue["dialogue"]:
            metrics.update(run_dialogue(cfg, data))
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    if not metrics:  # a non-zero rank of accelerate launch: rank 0 reports
        return None
    print(format_metrics(metrics), flush=True)
    print(f"metrics: {cfg.out}/metrics.json", flush=True)
    return metrics.get("sync/onset_f1")


def run_prompt_following(cfg: DictConfig, data: str | None) -> dict[str, float]:
    """The prompt / negative-prompt trials (v2a.evaluation.prompt_following), merged into metrics.json."""
    from v2a.evaluation.prompt_following import evaluate_prompt_following
    from v2a.pipeline.pipeline import V2APipeline

    # the same model as the main evaluation: its vocoder and sampler choices too
    module = V2APipeline.from_pretrained(cfg.ckpt, device=cfg.device, vocoder=chosen_vocoder(cfg),
                                         sampler=OmegaConf.to_container(cfg.sampler, resolve=True) if cfg.get("sampler") else None)
    return evaluate_prompt_following(module, data=str(data or module.run_config["data"]["root"]), split=cfg.split,
                                     classifier=cfg.classifier, out_dir=cfg.out, batch_size=cfg.batch_size,
                                     max_clips=cfg.max_clips, steps=cfg.steps, cfg_scale=cfg.cfg_scale, seed=cfg.seed)


def run_dialogue(cfg: DictConfig, data: str | None) -> dict[str, float]:
    """The dialogue metrics (v2a.evaluation.dialogue) with the chosen timing source, merged into metrics.json."""
    from v2a.evaluation.dialogue import evaluate_dialogue
    from v2a.evaluation.speech import WhisperRecognizer
    from v2a.pipeline.pipeline import V2APipeline

    pipeline = V2APipeline.from_pretrained(cfg.ckpt, device=cfg.device, vocoder=chosen_vocoder(cfg),
                                           sampler=OmegaConf.to_container(cfg.sampler, resolve=True) if cfg.get("sampler") else None)
    root = str(data or pipeline.run_config["data"]["root"])
    return evaluate_dialogue(pipeline, data=root, split=cfg.split,
                             out_dir=cfg.out, recognizer=WhisperRecognizer().transcribe, timing=cfg.timing,
                             aligner=cfg.aligner, batch_size=cfg.batch_size, max_clips=cfg.max_clips, steps=cfg.steps,
                             cfg_scale=cfg.cfg_scale, seed=cfg.seed, speaker_types=speaker_types(root, cfg.split, pipeline.spec))


def speaker_types(root: str, split: str, spec):
    """The speaker-type classifier (Resemblyzer, the `eval` extra) with centroids from the ground truth of another
    split (val, else train), or None with a message when its weights or such a split are missing."""
    from v2a.evaluation.speaker import SpeakerTypes, resemblyzer_weights

    try:
        resemblyzer_weights()
    except ImportError as error:
        log.warning("speaker-type metrics skipped: %s", error)
        return None
    for references in ("val", "train"):
        if references != split and (Path(root) / references / "index.json").is_file():
            try:
                return SpeakerTypes.from_split(root, references, spec)
            except ValueError as error:   # e.g. one speaker type only
                log.warning("speaker-type metrics skipped: %s", error)
                return None
    log.warning("speaker-type metrics skipped: %s has no val/train split for the reference voices", root)
    return None


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "compare":
        from v2a.evaluation.compare import main as compare_main

        sys.exit(compare_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "av_benchmark":
        from v2a.evaluation.av_benchmark import main as av_benchmark_main

        sys.exit(av_benchmark_main(sys.argv[2:]))
    # file names are taken literally (any character), bad overrides are one line (v2a/conf/arguments.py)
    sys.argv[1:] = prepare_command_line(CONFIG_DIR, "evaluate", ("ckpt", "out", "data.root", "classifier", "aligner"))
    main()
