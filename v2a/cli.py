"""The ``v2a`` console script: ``v2a generate VIDEO ...`` and ``v2a detect FILE...``.

``generate`` composes ``v2a/conf/generate.yaml`` exactly as ``python generate.py`` does: flags are turned
into Hydra overrides (values quoted, so any prompt text or file name is safe), and any further
``key=value`` arguments are passed through as they are. ``detect`` is the watermark detector
(``python -m v2a.watermark detect``).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from v2a.conf import CONFIG_DIR, ConfigError, check_config

CONF = CONFIG_DIR  # inside the package: an installed wheel finds them too

# flag -> generate.yaml key, for flags that take a value
VALUE_FLAGS = {
    "ckpt": "ckpt", "out": "out", "prompt": "prompt", "negative_prompt": "negative_prompt",
    "transcript": "transcript", "seed": "seed", "candidates": "num_candidates", "steps": "steps",
    "cfg_scale": "cfg_scale", "duration": "duration", "original_audio": "original_audio",
    "audio_format": "audio_format", "overlap": "overlap_s", "device": "device", "threads": "num_threads",
}


def hydra_quote(value: str) -> str:
    """``value`` as a single-quoted Hydra override value that reads back verbatim."""
    value = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)  # backslashes before a quote double
    value = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, value)  # ... and at the end
    return "'" + value.replace("${", "\\${") + "'"  # no interpolation of user text


def default_out(video: Path) -> Path:
    """``IN_v2a.mp4`` beside a file (``.mkv``/``.mov`` kept), ``IN_v2a/`` beside a folder."""
    if video.is_dir():
        return video.with_name(f"{video.name}_v2a")
    suffix = video.suffix if video.suffix.lower() in (".mkv", ".mov") else ".mp4"
    return video.with_name(f"{video.stem}_v2a{suffix}")


def generate_overrides(args: argparse.Namespace) -> list[str]:
    """The Hydra overrides of ``v2a/conf/generate.yaml`` that the parsed ``generate`` flags stand for."""
    video = Path(args.video)
    overrides = [f"video={hydra_quote(str(video))}"]
    if args.out is None:
        args.out = str(default_out(video))
    for flag, key in VALUE_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={hydra_quote(str(value))}" if isinstance(value, str) else f"{key}={value}")
    if args.vocoder is not None:
        overrides.append(f"model/vocoder={args.vocoder}")
    if args.vocoder_checkpoint is not None:
        overrides.append(f"model.vocoder.checkpoint={hydra_quote(args.vocoder_checkpoint)}")
    if args.no_watermark:
        overrides.append("watermark=off")
    return overrides + list(args.overrides)


USAGE = """usage: v2a {generate,detect} ...

  v2a generate VIDEO --ckpt CKPT [-o OUT] [options] [key=value ...]   give a video a generated soundtrack
  v2a detect FILE... [--key KEY] [--fpr FPR]                            say whether files carry the watermark

'v2a generate --help' lists the options."""


def generate_parser() -> argparse.ArgumentParser:
    gen = argparse.ArgumentParser(
        prog="v2a generate", description="Writes OUT.mp4 (video stream copied, generated audio muxed), OUT.wav "
                                         "and OUT.json. Extra key=value arguments are v2a/conf/generate.yaml overrides.")
    gen.add_argument("video", help="a video file or a folder of videos")
    gen.add_argument("overrides", nargs="*", metavar="key=value", help="more v2a/conf/generate.yaml overrides")
    gen.add_argument("--ckpt", required=True, help="checkpoint (RUN/checkpoints/last.ckpt) or export folder")
    gen.add_argument("-o", "--out", help="output video (.mp4/.mkv/.mov), or folder for a folder of videos "
                                         "(default: VIDEO_v2a.mp4 beside the input)")
    gen.add_argument("--prompt", help="text prompt, or a UTF-8 .txt file")
    gen.add_argument("--negative-prompt", dest="negative_prompt", help="what to avoid, text or a .txt file")
    gen.add_argument("--transcript", help="dialogue, text or a UTF-8 .txt/.srt/.vtt file (subtitles are timed: each window gets its lines)")
    gen.add_argument("--seed", type=int)
    gen.add_argument("-n", "--candidates", type=int, help="candidates per video (OUT_cand{i}.*, seeds seed+i)")
    gen.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    gen.add_argument("--cfg-scale", dest="cfg_scale", type=float, help="guidance scale (default: the model's)")
    gen.add_argument("--duration", type=float, help="seconds to generate (default: the whole video)")
    gen.add_argument("--overlap", type=float, help="window overlap in seconds (default 0.5)")
    gen.add_argument("--original-audio", dest="original_audio", choices=("drop", "keep", "mix"))
    gen.add_argument("--audio-format", dest="audio_format", choices=("wav", "flac"))
    gen.add_argument("--vocoder", help="a v2a/conf/model/vocoder config instead of the checkpoint's (griffin_lim, neural)")
    gen.add_argument("--vocoder-checkpoint", dest="vocoder_checkpoint", help="export of a trained neural vocoder")
    gen.add_argument("--no-watermark", dest="no_watermark", action="store_true",
                     help="do not watermark (the output will not be marked as generated)")
    gen.add_argument("--device", help="auto (the default: the GPU when present), cpu, cuda, cuda:1 ...")
    gen.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest on a busy shared CPU)")
    return gen


def run_generate_cli(args: argparse.Namespace) -> int:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from v2a.generation.entry import run_generate

    overrides = generate_overrides(args)
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="generate", overrides=overrides)
        check_config(cfg)  # impossible values (v2a/conf/schemas.py), before anything is loaded
    except (HydraException, OmegaConfBaseException, ConfigError) as error:
        cause = f": {str(error.__cause__).splitlines()[0]}" if error.__cause__ else ""  # e.g. the wrong type
        print(f"error: {str(error).splitlines()[0]}{cause}", file=sys.stderr)
        return 2
    return run_generate(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 ok, 1 a file failed (detect), 2 bad usage or input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["detect"]:  # the detector's own parser and messages
        from v2a.watermark.__main__ import main as watermark_main

        return watermark_main(argv)
    if argv[:1] != ["generate"]:
        print(USAGE, file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    args = generate_parser().parse_intermixed_args(argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_generate_cli(args)


if __name__ == "__main__":
    sys.exit(main())
